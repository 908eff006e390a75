import pytest

from mlflowlet.compilers._naming import (
    check_image,
    dns1123,
    kfp_name,
    param_name,
    unique_labels,
)
from mlflowlet.errors import CompileError


@pytest.mark.parametrize(("name", "label"), [
    ("train", "train"), ("Train_Model.v2", "train-model-v2"), ("__x__", "x"),
    ("a--b", "a-b"), ("-lead", "lead"), ("x" * 80, "x" * 63), ("add_all", "add-all"),
])
def test_dns1123_makes_kubernetes_labels(name, label):
    assert dns1123(name) == label


@pytest.mark.parametrize(("name", "max_length", "label"), [
    ("a" * 62 + "_b", 63, "a" * 62),  # truncation leaves a trailing '-': dropped
    ("ab-cd", 3, "ab"), ("ab-cd", 4, "ab-c"),
])
def test_dns1123_truncation_never_ends_a_label_with_a_dash(name, max_length, label):
    assert dns1123(name, max_length) == label


def test_dns1123_refuses_a_name_without_letters_or_digits():
    with pytest.raises(CompileError, match="no letter or digit"):
        dns1123("__")


def test_names_colliding_after_sanitising_are_an_error_naming_both():
    with pytest.raises(CompileError) as err:
        unique_labels(["train_a", "train.a"])
    assert str(err.value).startswith("step names 'train_a' and 'train.a' both become 'train-a'")
    with pytest.raises(CompileError, match="^output names 'a_b' and 'a.b'"):
        unique_labels(["a_b", "a.b"], what="output")


def test_unique_labels_keeps_distinct_names():
    assert unique_labels(["prep", "train", "train-2"]) == {
        "prep": "prep", "train": "train", "train-2": "train-2"}


def test_kfp_name_is_an_identifier():
    assert kfp_name("model.txt") == "model_txt"
    assert kfp_name("2x") == "_2x"
    assert kfp_name("Model-V2") == "Model_V2"  # case is kept


def test_param_name_keeps_case_dashes_and_underscores_and_replaces_the_rest():
    assert param_name("Model_v2-final") == "Model_v2-final"
    assert param_name("model.txt") == "model-txt"
    assert param_name("a b/c") == "a-b-c"


@pytest.mark.parametrize("image", ["python:3.11", "repo/img:tag", "ghcr.io/org/img:1.0",
                                   "localhost:5000/a/b", "img@sha256:" + "a" * 64])
def test_valid_images_pass(image):
    assert check_image(image, "step") == image


@pytest.mark.parametrize("image", ["Repo/Img", "img:", "has space:1", "img:tag:more"])
def test_invalid_images_are_named(image):
    expected = r"\(expected \[registry/\]name\[:tag\]\[@sha256:digest\], lowercase name\)"
    with pytest.raises(CompileError, match=r"not a valid image reference " + expected):
        check_image(image, "step 'x'")


def test_missing_image_says_how_to_give_one():
    with pytest.raises(CompileError, match=r"^step 'x' has no container image; pass "
                                           r"image='repo/name:tag' to compile\(\) \(or --image\)"):
        check_image("", "step 'x'")


def test_kfp_name_of_a_python_keyword_gets_a_trailing_underscore():
    assert kfp_name("return") == "return_"
    assert kfp_name("class") == "class_"

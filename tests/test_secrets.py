import json

import pytest

from mlflowlet.errors import SecretsError
from mlflowlet.secrets import SecretsStore


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("MLF_TEST_A", "MLF_TEST_B", "MLF_TEST_MISSING"):
        monkeypatch.delenv(name, raising=False)


def test_secrets_file_reads_key_values(tmp_path):
    path = tmp_path / "secrets.env"
    path.write_text(
        "# a comment\n\nexport API_KEY=abc123\nDB_PASS = \"p@ss word\"\nQUOTED='x=y'\nEMPTY=\n"
    )
    store = SecretsStore().add_source("file", str(path))
    assert store.get("API_KEY") == "abc123"
    assert store.get("DB_PASS") == "p@ss word"
    assert store.get("QUOTED") == "x=y"
    assert store.get("EMPTY") == ""
    assert "# a comment" not in store


def test_secrets_file_missing_errors(tmp_path):
    missing = str(tmp_path / "none.env")
    with pytest.raises(SecretsError) as err:
        SecretsStore().add_source("file", missing)
    assert str(err.value) == (
        f"secrets file {missing!r} does not exist (with_secrets('file', path))"
    )


def test_secrets_file_malformed_line_names_line_number(tmp_path):
    path = tmp_path / "secrets.env"
    path.write_text("A=1\n# c\nsupersecretvalue\n")
    with pytest.raises(SecretsError) as err:
        SecretsStore().add_source("file", str(path))
    msg = str(err.value)
    assert "line 3" in msg and str(path) in msg
    assert "supersecretvalue" not in msg


def test_env_source_reads_present_and_notes_missing(monkeypatch):
    monkeypatch.setenv("MLF_TEST_A", "alpha")
    monkeypatch.setenv("MLF_TEST_B", "beta")
    store = SecretsStore().add_source("env", "MLF_TEST_A, MLF_TEST_MISSING")
    store.add_source("env", ["MLF_TEST_B"])
    assert store.get("MLF_TEST_A") == "alpha"
    assert store.get("MLF_TEST_B") == "beta"
    assert "MLF_TEST_MISSING" not in store
    assert store.missing_keys == ["MLF_TEST_MISSING"]
    assert store.to_dict()[0] == {"kind": "env", "source": "MLF_TEST_A,MLF_TEST_MISSING"}


@pytest.mark.parametrize(
    "source", [{"TOKEN": "t0ken"}, json.dumps({"TOKEN": "t0ken"}), "{'TOKEN': 't0ken'}"]
)
def test_inline_source_accepts_dict_json_and_repr(source):
    store = SecretsStore().add_source("inline", source)
    assert store.get("TOKEN") == "t0ken"
    assert store.has("TOKEN") and not store.has("OTHER")


def test_inline_bad_text_errors_without_quoting_it():
    with pytest.raises(SecretsError) as err:
        SecretsStore().add_source("inline", "TOKEN: hunter22")
    assert "hunter22" not in str(err.value)


def test_unknown_kind_lists_kinds():
    with pytest.raises(SecretsError) as err:
        SecretsStore().add_source("vault", "x")
    assert all(kind in str(err.value) for kind in ("file", "env", "inline"))


def test_later_source_overrides_earlier():
    store = SecretsStore().add_source("inline", {"A": "one"}).add_source("inline", {"A": "two"})
    assert store.get("A") == "two"
    assert dict(store.items()) == {"A": "two"}
    assert list(store.keys()) == ["A"]


def test_to_dict_never_holds_values(tmp_path, monkeypatch):
    monkeypatch.setenv("MLF_TEST_A", "envsecret")
    path = tmp_path / "s.env"
    path.write_text("F=filesecret\n")
    store = (
        SecretsStore()
        .add_source("file", str(path))
        .add_source("env", "MLF_TEST_A")
        .add_source("inline", {"I1": "inlinesecret", "I2": "other"})
    )
    described = store.to_dict()
    assert described == [
        {"kind": "file", "source": str(path)},
        {"kind": "env", "source": "MLF_TEST_A"},
        {"kind": "inline", "source": None, "keys": ["I1", "I2"]},
    ]
    text = json.dumps(described)
    for value in store.values():
        assert value not in text


def test_from_sources_round_trips_to_dict(tmp_path):
    path = tmp_path / "s.env"
    path.write_text("F=filesecret\n")
    store = SecretsStore().add_source("file", str(path)).add_source("inline", {"I": "secret"})
    again = SecretsStore.from_sources(store.to_dict())
    assert again.get("F") == "filesecret"
    assert "I" not in again  # inline values are never stored
    assert again.missing_keys == ["I"]
    assert again.to_dict() == store.to_dict()


def test_from_sources_reads_inline_values_of_a_task_spec():
    store = SecretsStore.from_sources([{"kind": "inline", "source": {"K": "value"}}])
    assert store.get("K") == "value"


def test_from_sources_rejects_bad_entry():
    with pytest.raises(SecretsError):
        SecretsStore.from_sources(["file"])


def test_mask_hides_values():
    store = SecretsStore().add_source("inline", {"A": "abc", "B": "abcdef", "C": "xy"})
    masked = store.mask("key abcdef and abc and xy")
    assert masked == "key *** and *** and xy"  # 'xy' is too short to mask
    assert "abcdef" not in masked


def test_mask_longest_value_first():
    store = SecretsStore().add_source("inline", {"A": "pass", "B": "password1"})
    assert store.mask("password1") == "***"


def test_mask_handles_regex_characters():
    store = SecretsStore().add_source("inline", {"A": "a.b*c"})
    assert store.mask("x a.b*c y aXbbc") == "x *** y aXbbc"


def test_mask_without_secrets_returns_the_same_text_object():
    store = SecretsStore()  # no copy, no regex: its speed is measured in benchmarks/bench_core.py
    text = "nothing to hide"
    assert store.mask(text) is text


def test_mask_sees_sources_added_later():
    store = SecretsStore().add_source("inline", {"A": "first"})
    assert store.mask("first second") == "*** second"
    store.add_source("inline", {"B": "second"})
    assert store.mask("first second") == "*** ***"


def test_repr_shows_keys_not_values():
    store = SecretsStore().add_source("inline", {"API_KEY": "verysecret"})
    text = repr(store)
    assert "API_KEY" in text and "inline" in text
    assert "verysecret" not in text


# masking a stream written in pieces -------------------------------------------------------------
def _stream(store, pieces: list[str]) -> list[str]:
    """Feed ``pieces`` as successive writes; return what each write would store."""
    stored, held = [], ""
    for i, piece in enumerate(pieces):
        out, held = store.mask_stream(held + piece, final=i == len(pieces) - 1)
        stored.append(out)
    return stored


def test_mask_stream_never_stores_part_of_a_secret_split_across_writes():
    store = SecretsStore().add_source("inline", {"A": "password123", "B": "tok"})
    text = "log: password123 and tok and password123!"
    for cut in range(1, len(text)):  # every place a write boundary can fall
        stored = _stream(store, [text[:cut], text[cut:]])
        assert "".join(stored) == "log: *** and *** and ***!"
        assert all("pass" not in s and "123" not in s and "to" not in s[-2:] for s in stored)


def test_mask_stream_keeps_back_only_what_may_start_a_secret():
    store = SecretsStore().add_source("inline", {"A": "abcdef"})
    assert store.mask_stream("hello world, abc") == ("hello world", ", abc")
    assert store.mask_stream("abcdef then x", final=False) == ("*** t", "hen x")
    assert store.mask_stream("tail abc", final=True) == ("tail abc", "")
    assert SecretsStore().mask_stream("no secrets at all") == ("no secrets at all", "")


# --- exact behaviour at the edges (each kills a one-line change mutation testing found) --------


def test_kind_is_normalised_and_a_non_text_kind_is_refused_by_name():
    assert SecretsStore().add_source(" Inline ", {"K": "v1"}).get("K") == "v1"
    with pytest.raises(SecretsError) as err:
        SecretsStore().add_source(None, {"K": "v1"})
    assert str(err.value) == "unknown secrets kind None; use one of file, env, inline"
    with pytest.raises(SecretsError) as err:
        SecretsStore().add_source("file", None)
    assert str(err.value) == "secrets file '' does not exist (with_secrets('file', path))"


def test_from_sources_messages_and_sources_after_a_stored_inline_one(monkeypatch):
    with pytest.raises(SecretsError) as err:
        SecretsStore.from_sources([{"kind": "env", "source": "X"}, ["file"]])
    assert str(err.value) == "secrets source 1 must be a dict with 'kind' and 'source', got list"
    with pytest.raises(SecretsError, match="secrets source 0 must be a dict"):
        SecretsStore.from_sources([{"source": "x"}])  # a dict without 'kind'
    monkeypatch.setenv("MLF_TEST_A", "value-a")
    store = SecretsStore.from_sources(
        [{"kind": "inline", "source": None, "keys": ["K"]}, {"kind": "env", "source": "MLF_TEST_A"}]
    )
    assert store.get("MLF_TEST_A") == "value-a" and store.missing_keys == ["K"]


def test_to_dict_copies_the_key_lists_and_get_returns_the_default():
    store = SecretsStore().add_source("inline", {"A": "aaa"})
    described = store.to_dict()
    described[0]["keys"].append("B")
    assert store.to_dict() == [{"kind": "inline", "source": None, "keys": ["A"]}]
    assert store.get("nope", "fallback") == "fallback"


def test_mask_leaves_non_text_alone_and_a_source_without_values_masks_nothing():
    store = SecretsStore().add_source("inline", {"A": "s3cr3t"})
    assert store.mask(12345) == 12345
    empty = SecretsStore().add_source("env", "MLF_TEST_MISSING")  # named but unset
    assert empty.mask_stream("plain text") == ("plain text", "")
    assert empty.mask("plain text") == "plain text"


def test_mask_stream_cut_points_are_exact():
    store = SecretsStore().add_source("inline", {"A": "s3cr3t"})  # the longest value: 6
    assert store.mask_stream("s3") == ("", "s3")  # all of it may start the secret
    assert store.mask_stream("s3cr3t12345") == ("***", "12345")  # the match ends at the cut
    assert store.mask_stream("ab s3cr3") == ("ab ", "s3cr3")


def test_secrets_file_edges_bom_empty_quotes_spaces_and_unreadable(tmp_path):
    path = tmp_path / "secrets.env"
    path.write_bytes(b"\xef\xbb\xbfKEY=v1\nEMPTY=\"\"\nONE='\n")
    store = SecretsStore().add_source("file", str(path))
    assert sorted(store.keys()) == ["EMPTY", "KEY", "ONE"]
    assert store.get("EMPTY") == "" and store.get("ONE") == "'"
    path.write_text("A B=1\n")
    with pytest.raises(SecretsError) as err:
        SecretsStore().add_source("file", str(path))
    assert str(err.value) == (
        f"secrets file {str(path)!r} line 1 is not KEY=VALUE "
        "(blank lines and lines starting with # are skipped)"
    )
    path.write_bytes(b"KEY=\xff\xfe-not-utf8\n")
    with pytest.raises(SecretsError) as err:
        SecretsStore().add_source("file", str(path))
    assert str(err.value) == f"cannot read secrets file {str(path)!r} (UnicodeDecodeError)"


def test_env_names_are_deduplicated_and_a_bad_source_is_named():
    store = SecretsStore().add_source("env", "MLF_TEST_A, ,MLF_TEST_A,MLF_TEST_B")
    assert store.to_dict() == [{"kind": "env", "source": "MLF_TEST_A,MLF_TEST_B"}]
    with pytest.raises(SecretsError) as err:
        SecretsStore().add_source("env", 42)
    assert str(err.value) == (
        "env secrets need variable names, comma separated or a list "
        "(e.g. with_secrets('env', 'API_KEY,DB_PASSWORD')), got int"
    )


def test_inline_values_become_text_and_bad_inline_sources_are_named():
    store = SecretsStore().add_source("inline", {"N": 12345, "S": "text"})
    assert store.get("N") == "12345" and store.get("S") == "text"
    with pytest.raises(SecretsError) as err:
        SecretsStore().add_source("inline", "{not json")
    assert str(err.value) == (
        "inline secrets text is neither JSON nor a Python dict literal "
        "(e.g. with_secrets('inline', {'API_KEY': '...'}))"
    )
    with pytest.raises(SecretsError) as err:
        SecretsStore().add_source("inline", "[1, 2]")
    assert str(err.value) == (
        "inline secrets must be a dict of names to values, got list "
        "(e.g. with_secrets('inline', {'API_KEY': '...'}))"
    )


def test_repr_lists_the_source_kinds():
    store = SecretsStore().add_source("inline", {"A": "aaa"}).add_source("env", "MLF_TEST_A")
    assert repr(store) == "SecretsStore(sources=[inline, env], keys=['A'])"


def test_a_described_secret_source_keeps_key_names_never_values():
    from mlflowlet.secrets import safe_secret_source

    inline = {"kind": "inline", "source": {"B_KEY": "value-b-123", "A_KEY": "value-a-456"}}
    assert safe_secret_source(inline) == {"kind": "inline", "source": None,
                                          "keys": ["A_KEY", "B_KEY"]}
    described = {"kind": "inline", "source": None, "keys": ("K1",)}
    assert safe_secret_source(described) == {"kind": "inline", "source": None, "keys": ["K1"]}
    assert safe_secret_source({"kind": "file", "source": "/run/s.txt"}) == {
        "kind": "file", "source": "/run/s.txt"}
    assert safe_secret_source({"kind": "env", "source": "A,B"}) == {"kind": "env", "source": "A,B"}

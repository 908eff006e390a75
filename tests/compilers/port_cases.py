"""What each ported example must compute: parameters to run it with, and the expected outcome.

Every expectation is derived from the original's code and the parameters (by hand, in the
comments), never copied from a run's output; the same function judges the local run and each
compiled run (see ``port_outcome.Outcome``). ``PORTS`` lists every entry of ``examples/ports``,
including the ones mlflowlet cannot express yet (``missing`` names the construct, issue #13).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from port_outcome import Outcome, typed

# what the ports still cannot do as the original does
JSON_ITEMS = ("the original maps over a JSON string; mlflowlet never parses a str into a list, "
              "locally or compiled (the map fails on both: return a list instead)")


@dataclass(frozen=True)
class Port:
    """One corpus entry.

    Attributes:
        name: the folder under ``examples/ports``.
        expect: asserts an :class:`Outcome` computed what the original computes for ``params``.
        runs: parameter sets of the local runs; ``runs[check]`` is also the compiled runs'.
        check: which of ``runs`` the compiled runs use.
        files: files the test writes to its tmp dir first; ``{tmp}`` in a value is that dir.
        ignore: for ``--check``: step name to results that differ by nature (a timestamp).
        xfail: phase (``local``, ``compile-argo``, ``check-kfp``...) to the #12 defect there.
        missing: for an original not expressible yet: the construct mlflowlet lacks (#13).
        refused: target to a regex of the compile-time refusal it gives (a construct the
            target cannot carry: compiling and checking there must raise it).
    """

    name: str
    expect: Callable[[Outcome, dict[str, Any]], None] | None = None
    runs: tuple[dict[str, Any], ...] = ({},)
    check: int = 0
    files: dict[str, str] = field(default_factory=dict)
    ignore: dict[str, list[str]] = field(default_factory=dict)
    xfail: dict[str, str] = field(default_factory=dict)
    missing: str = ""
    refused: dict[str, str] = field(default_factory=dict)


def _skipped(o: Outcome, *names: str) -> None:
    assert {n: o.states.get(n) for n in names} == dict.fromkeys(names, "skipped")


def kfp_condition(o: Outcome, p: dict[str, Any]) -> None:
    flip1 = p["force_flip_result"]
    assert o.state == "completed"
    assert typed(o.results["flip_coin"]) == typed({"return": flip1})
    assert o.printed("print_msg") == [flip1]
    if flip1 == "heads":  # both steps of the block run; the second prints the second flip
        assert o.results["flip_coin-2"] == {"return": p["force_flip2"]}
        assert o.printed("print_msg-2") == [p["force_flip2"]]
        assert o.printed("print_msg-3") == [p.get("text", "condition test")]
    else:
        _skipped(o, "flip_coin-2", "print_msg-2", "print_msg-3")


def kfp_nested_condition(o: Outcome, p: dict[str, Any]) -> None:
    flips = [p[f"force_flip{i}"] for i in range(1, 5)]
    for i, flip in enumerate(flips[:3]):  # flip3 runs: flip1 is never 'no-such-result'
        node = "flip_coin_op" + (f"-{i + 1}" if i else "")
        assert typed(o.results[node]) == typed({"return": flip})
        assert o.printed("print_op" + (f"-{i + 1}" if i else "")) == [flip]
    if flips[1] == flips[2]:
        assert o.printed("print_op-4") == [flips[3]]
    else:
        _skipped(o, "flip_coin_op-4", "print_op-4")
    assert o.state == "completed"


def kfp_if_elif_else(o: Outcome, p: dict[str, Any]) -> None:
    side = p["force_flip_result"]
    branch = {"heads": "print_and_return", "tails": "print_and_return-2"}.get(
        side, "print_and_return-3"
    )
    text = {"heads": "Got heads!", "tails": "Got tails!"}.get(side, "Draw!")
    assert o.results[branch] == {"return": text} and o.printed(branch) == [text]
    others = {"print_and_return", "print_and_return-2", "print_and_return-3"} - {branch}
    _skipped(o, *sorted(others))


def kfp_execution_order(o: Outcome, p: dict[str, Any]) -> None:
    assert o.printed("echo1_op") == ["message 1"] and o.printed("echo2_op") == ["message 2"]
    assert o.ran_before("echo1_op", "echo2_op")


def kfp_pipeline_with_after(o: Outcome, p: dict[str, Any]) -> None:
    names = ["print_text", "print_text-2", "print_text-3"]
    assert [o.printed(n) for n in names] == [["1st task"], ["2nd task"], ["3rd task"]]
    assert o.ran_before(names[0], names[1]) and o.ran_before(names[1], names[2])


def kfp_exit_handler(o: Outcome, p: dict[str, Any]) -> None:
    assert o.state == "error"  # fail_op exits 1; the exit handler runs anyway
    assert o.states == {"print_op": "completed", "fail_op": "error", "exit_op": "completed"}
    assert o.printed("print_op") == [p.get("message", "Hello World!")]
    assert "Task failed." in o.printed("fail_op")
    assert o.printed("exit_op") == ["Exit handler has worked!"]


def kfp_task_final_status(o: Outcome, p: dict[str, Any]) -> None:
    message = p.get("message", "Hello World!")
    assert o.state == "completed"  # print_op echoes and succeeds
    assert o.printed("print_op") == [message]
    # echo "user input:" user_input "pipeline status:" status: of the status, only its state
    # (KFP's SUCCEEDED, mlflowlet's completed) is the same on every target; the port prints it
    assert o.printed("exit_op") == [f"user input: {message} pipeline status: completed"]
    assert o.states["exit_op"] == "completed"


def argo_exit_handlers(o: Outcome, p: dict[str, Any]) -> None:
    # intentional-fail: `echo intentional failure; exit 1` fails the workflow
    assert o.printed("intentional_fail")[0] == "intentional failure"  # then its traceback
    assert o.states["intentional_fail"] == "error" and o.state == "error"
    # the exit handler runs anyway: send-email with the status (Failed) and the failed steps
    assert o.printed("send_email") == ["send e-mail: error. Failed steps ['intentional_fail']"]
    assert o.results["send_email"]["name"] and o.results["send_email"]["duration"] >= 0
    _skipped(o, "celebrate")  # when: {{workflow.status}} == Succeeded: false
    assert o.printed("cry") == ["boohoo!"]  # when: {{workflow.status}} != Succeeded


def kfp_pipeline_with_loops(o: Outcome, p: dict[str, Any]) -> None:
    loop = p.get("loop_parameter", ["a", "b"])
    assert sorted(o.printed("print_text")) == sorted(loop)  # each item verbatim, as a str
    structs = [{"A_a": "1", "B_b": "2"}, {"A_a": "10", "B_b": "20"}]
    assert typed(o.results["args_generator_op"]) == typed({"return": structs})
    assert sorted(o.printed("print_struct")) == sorted(str(s) for s in structs)
    assert len(o.items["print_text"]) == len(loop) and len(o.items["print_struct"]) == 2


def kfp_loop_output(o: Outcome, p: dict[str, Any]) -> None:
    # ParallelFor parses the JSON string; each float item reaches `s: str` as its text
    assert sorted(o.printed("print_op")) == ["1.1", "1.2", "1.3"]
    assert o.state == "completed"


def kfp_lightweight_functions(o: Outcome, p: dict[str, Any]) -> None:
    msg, dct = p["message"], p.get("input_dict", {"A": 1, "B": 2})
    res = o.results["preprocess"]
    assert typed(res) == typed({
        "output_parameter_path": msg,
        "output_bool_parameter_path": True,
        "output_dict_parameter_path": dct,  # ints stay ints
        "output_list_parameter_path": ["a", "b", "c"],
    })
    assert o.artifacts[("preprocess", "output_dataset_one")] == msg.encode()
    line = (
        f"dataset_one_contents: {msg} || dataset_two_contents: {msg} || message: {msg} || "
        f"input_bool: True, type <class 'bool'> || input_dict: {dct}, type <class 'dict'> || "
        "input_list: ['a', 'b', 'c'], type <class 'list'> \n"
    )
    model = o.artifacts[("train", "model")].decode()
    assert model.startswith(f"Step 0\n{line}\n=====\nStep 1\n") and model.count("=====") == 100


def kfp_retry(o: Outcome, p: dict[str, Any]) -> None:
    for node, codes, retries in (
        ("random_failure_op", p["exit_codes1"], 10),
        ("random_failure_op-2", p["exit_codes2"], 5),
    ):
        if set(codes.split(",")) == {"0"}:  # exits 0 at once
            assert (o.states[node], o.attempts[node], o.printed(node)) == ("completed", 1, ["0"])
        else:  # never exits 0: every attempt fails
            assert (o.states[node], o.attempts[node]) == ("error", retries + 1)


def kfp_caching(o: Outcome, p: dict[str, Any]) -> None:
    from datetime import datetime

    n = p["seconds"]
    want = [f"Working for {n} seconds.", *(f"Working: {i}." for i in range(n)), "Done."]
    assert o.printed("do_work_op") == want
    datetime.fromisoformat(o.results["do_work_op"]["return"])  # when the work finished


def kfp_two_step(o: Outcome, p: dict[str, Any]) -> None:
    text = p.get("text", "Hello world!")
    assert o.artifacts[("write_to_gcs", "output_gcs_path")] == f"{text}\n".encode()
    assert o.printed("read_from_gcs") == [text]


SPEECH1 = "To be, or not to be: that is the question.\n"
SPEECH2 = "All the world's a stage"  # no trailing newline, as many files end


def kfp_parallel_join(o: Outcome, p: dict[str, Any]) -> None:
    assert o.results["gcs_download_op"] == {"return": SPEECH1}
    assert o.results["gcs_download_op-2"] == {"return": SPEECH2}
    assert o.printed("echo2_op") == [f"Text 1: {SPEECH1.strip()}", f"Text 2: {SPEECH2}"]


def kfp_reused_component(o: Outcome, p: dict[str, Any]) -> None:
    a, b = p.get("a", 2), p.get("b", 5)
    sums = [a + 3, a + 3 + b, a + 3 + b + 7]
    assert typed([o.results[n]["sum"] for n in ("add_op", "add_op-2", "add_op-3")]) == typed(sums)


def argo_coinflip(o: Outcome, p: dict[str, Any]) -> None:
    side = p["force_flip_result"]
    other = "tails" if side == "heads" else "heads"
    assert o.printed("flip_coin") == [side]
    assert o.printed(side) == [f"it was {side}"]
    _skipped(o, other)


def argo_dag_diamond(o: Outcome, p: dict[str, Any]) -> None:
    assert {n: o.printed(n) for n in "ABCD"} == {n: [n] for n in "ABCD"}
    assert all(o.ran_before(a, b) for a, b in ("AB", "AC", "BD", "CD"))


def argo_conditionals(o: Outcome, p: dict[str, Any]) -> None:
    names = ("print-hello-govaluate", "print-hello-expr")
    if p.get("should_print", "true") == "true":
        assert [o.printed(n) for n in names] == [["hello"], ["hello"]]
    else:
        _skipped(o, *names)


def argo_artifact_passing(o: Outcome, p: dict[str, Any]) -> None:
    assert o.artifacts[("generate-artifact", "hello-art")] == b"hello world\n"
    assert o.printed("consume-artifact") == ["hello world"]


def kfp_fan_in_return(o: Outcome, p: dict[str, Any]) -> None:
    # double each of [1, 2, 3], collect, add: 2 + 4 + 6, returned as the pipeline's output
    assert typed(o.items["double"]) == typed([{"return": 2}, {"return": 4}, {"return": 6}])
    assert typed(o.results["add"]) == typed({"return": 12})
    assert typed(o.outputs) == typed({"return": 12})


def hera_conditional_on_task_status(o: Outcome, p: dict[str, Any]) -> None:
    # random raises when forced to fail: failure runs (depends random.Failed), success does not;
    # the workflow fails (the omitted success branch is a failed leaf, Argo's rule)
    if p["force_result"] == "failure":
        assert o.states["random"] == "error" and o.state == "error"
        assert o.printed("failure") == ["failed!"]
        _skipped(o, "success")
    else:
        assert o.states["random"] == "completed" and o.state == "completed"
        assert o.printed("success") == ["succeeded!"]
        _skipped(o, "failure")


def argo_memoize(o: Outcome, p: dict[str, Any]) -> None:
    # cowsay draws the message in a bubble above the cow; the bubble's rules fit the message
    message = p.get("message", "test-5")
    rule = "-" * (len(message) + 2)
    hello = o.results["whalesay"]["hello"]
    assert hello.splitlines()[:3] == [f" {rule}", f"< {message} >", f" {rule}"]
    assert "(oo)" in hello and o.printed("whalesay")[1] == f"< {message} >"


def hera_dynamic_fanout(o: Outcome, p: dict[str, Any]) -> None:
    values = o.results["generate"]["return"]
    n = p.get("force_count") or len(values)
    assert 8 <= n <= 12 or n == p.get("force_count")
    assert typed(values) == typed(list(range(n))) and o.printed("generate") == [json.dumps(values)]
    assert len(o.items["consume"]) == n
    assert sorted(o.printed("consume")) == sorted(f"Received value: {i}!" for i in range(n))


def hera_fan_in(o: Outcome, p: dict[str, Any]) -> None:
    assert typed(o.items["fanout"]) == typed([{"value": i} for i in range(10)])
    objects = [f"Received object: {{'value': {i}}}!" for i in range(10)]
    assert sorted(o.printed("fanout")) == sorted(objects)
    assert o.printed("fanin") == [f"Received values: {list(range(10))}!"]


def argo_parameter_aggregation(o: Outcome, p: dict[str, Any]) -> None:
    # odd-or-even over [1, 2, 3, 4] outputs each number and its evenness (an int, not text)
    parity = [{"num": n, "evenness": "even" if n % 2 == 0 else "odd"} for n in (1, 2, 3, 4)]
    assert typed(o.items["odd_or_even"]) == typed(parity)
    assert sorted(o.printed("odd_or_even")) == sorted(f"{n} is {e}" for n, e in
                                                      ((1, "odd"), (2, "even"), (3, "odd"),
                                                       (4, "even")))
    # `when: {{item.evenness}} == even`: only 2 and 4 are halved; the aggregated result of the
    # items that ran is [1, 2], one print each
    assert typed(o.items["divide_by_2"]) == typed([{"return": 1}, {"return": 2}])
    assert sorted(o.printed("print_num")) == ["1", "2"]
    assert o.states["divide_by_2"] == o.states["print_num"] == "completed"
    assert o.state == "completed"


def metaflow_helloworld(o: Outcome, p: dict[str, Any]) -> None:
    assert o.printed("hello") == ["Metaflow says: Hi!"]
    assert o.printed("end") == ["HelloFlow is all done."]
    assert o.ran_before("start", "hello") and o.ran_before("hello", "end")


def metaflow_complex_flow(o: Outcome, p: dict[str, Any]) -> None:
    assert "JOIN1 var =  200" in o.printed("join3") and "JOIN2 var =  100" in o.printed("join3")
    assert " BR 12 -> JOIN1 " in o.printed("br12")
    for first, then in [("start", "br1"), ("start", "br2"), ("br1", "br11"), ("br1", "br12"),
                        ("br11", "join1"), ("br12", "join1"), ("br2", "br21"), ("br2", "br22"),
                        ("br21", "join2"), ("br22", "join2"), ("join1", "join3"),
                        ("join2", "join3"), ("join3", "end")]:
        assert o.ran_before(first, then), (first, then)


# movies.csv by genre, gross sorted; quartile i = sorted[0 if n < 2 else round(n * cut)]:
# Comedy   [950000, 1500000, 2200000]           n=3 -> idx 1, 2, 2
# Drama    [350000, 800000, 1200000, 2700000]   n=4 -> idx 1, 2, 3
# Romance  [800000]                             n=1 -> idx 0, 0, 0
# Sci-Fi   [300000, 1200000, 5400000]           n=3 -> idx 1, 2, 2
# Thriller [5400000]                            n=1 -> idx 0, 0, 0
STATS_QUARTILES = {
    "comedy": [1500000, 2200000, 2200000],
    "drama": [800000, 1200000, 2700000],
    "romance": [800000, 800000, 800000],
    "sci-fi": [1200000, 5400000, 5400000],
    "thriller": [5400000, 5400000, 5400000],
}


def metaflow_statistics(o: Outcome, p: dict[str, Any]) -> None:
    assert o.results["start"]["genres"] == ["Comedy", "Drama", "Romance", "Sci-Fi", "Thriller"]
    stats = o.results["join"]["genre_stats"]
    assert typed({g: s["quartiles"] for g, s in stats.items()}) == typed(STATS_QUARTILES)
    assert typed(stats["comedy"]["dataframe"]["gross"]) == typed([950000, 1500000, 2200000])
    assert stats["drama"]["dataframe"]["movie_title"] == [
        "The Quiet Harbor", "Paper Lanterns", "Orbit of Glass", "Cold Ledger"]
    assert "title_year" not in stats["comedy"]["dataframe"]
    assert [i["genre"] for i in o.items["compute_statistics"]] == [
        "Comedy", "Drama", "Romance", "Sci-Fi", "Thriller"]


def kfp_loop_static(o: Outcome, p: dict[str, Any]) -> None:
    greeting = p.get("greeting", "this is a test for looping through parameters")
    assert o.printed("print_op") == [greeting] and o.results["print_op"] == {"return": greeting}
    sums = ["12", "1020"]  # a + b of each static item, both str: concatenated
    for node in ("concat_op", "print_op-2"):  # the body, per item: concat, then print its output
        assert typed(o.items[node]) == typed([{"return": s} for s in sums])
        assert sorted(o.printed(node)) == sorted(sums)
    assert o.ran_before("print_op", "concat_op")  # concat_task.after(print_task)


def kfp_parallelfor_parallelism(o: Outcome, p: dict[str, Any]) -> None:
    loop = p["loop_parameter"]
    assert sorted(o.printed("print_text")) == sorted(loop)  # the outer item
    assert sorted(o.printed("print_text-2")) == sorted(loop * len(loop))  # nested: every pair
    assert len(o.items["print_text-2"]) == len(loop) ** 2
    assert sorted(o.printed("print_text-3")) == ["1", "10"]  # item.A_a of the static items
    assert sorted(o.printed("print_text-4")) == ["2", "20"]
    assert sorted(o.printed("print_text-5")) == ["10", "10", "100", "100"]  # nested, per outer
    assert sorted(o.printed("print_text-6")) == ["20", "20", "200", "200"]
    assert o.printed("print_int") == ["1", "2", "3"]  # parallelism=1: one item at a time
    for node in [f"print_int-{i}" for i in range(2, 7)]:  # item.a of each upstream dict
        assert sorted(o.printed(node)) == ["1", "2", "3"], node
    assert o.state == "completed"


_HT = {"force_flip_result": "heads", "force_flip2": "tails"}
PORTS = [
    Port("kfp_condition", kfp_condition, (_HT, {"force_flip_result": "tails"})),
    Port("kfp_nested_condition", kfp_nested_condition,
         ({"force_flip1": "heads", "force_flip2": "tails", "force_flip3": "tails",
           "force_flip4": "heads"},
          {"force_flip1": "tails", "force_flip2": "heads", "force_flip3": "tails",
           "force_flip4": "heads"}), check=1),
    Port("kfp_if_elif_else", kfp_if_elif_else,
         ({"force_flip_result": "draw"}, {"force_flip_result": "heads"},
          {"force_flip_result": "tails"})),
    Port("kfp_execution_order", kfp_execution_order),
    Port("kfp_pipeline_with_after", kfp_pipeline_with_after),
    Port("kfp_exit_handler", kfp_exit_handler),
    Port("kfp_pipeline_with_loops", kfp_pipeline_with_loops,
         ({"loop_parameter": ["a", "1.10", "true"]}, {})),
    Port("kfp_loop_output", kfp_loop_output,
         xfail={"local": JSON_ITEMS, "check-argo": JSON_ITEMS, "check-kfp": JSON_ITEMS}),
    Port("kfp_lightweight_functions", kfp_lightweight_functions,
         ({"message": "1.10"}, {"message": "hello", "input_dict": {"A": 0, "B": 2}})),
    Port("kfp_retry", kfp_retry,
         ({"exit_codes1": "3", "exit_codes2": "0,0"}, {"exit_codes1": "0", "exit_codes2": "0"})),
    Port("kfp_caching", kfp_caching, ({"seconds": 0}, {"seconds": 2}),
         ignore={"do_work_op": ["return"]}),
    Port("kfp_two_step", kfp_two_step),
    Port("kfp_parallel_join", kfp_parallel_join,
         ({"url1": "{tmp}/shakespeare1.txt", "url2": "{tmp}/shakespeare2.txt"},),
         files={"shakespeare1.txt": SPEECH1, "shakespeare2.txt": SPEECH2}),
    Port("kfp_reused_component", kfp_reused_component, ({}, {"a": -1, "b": 0})),
    Port("argo_coinflip", argo_coinflip,
         ({"force_flip_result": "tails"}, {"force_flip_result": "heads"})),
    Port("argo_dag_diamond", argo_dag_diamond),
    Port("argo_conditionals", argo_conditionals,
         ({"should_print": "true"}, {"should_print": "false"})),
    Port("argo_artifact_passing", argo_artifact_passing),
    Port("kfp_fan_in_return", kfp_fan_in_return),
    Port("kfp_task_final_status", kfp_task_final_status, ({}, {"message": "1.10"})),
    Port("argo_exit_handlers", argo_exit_handlers, ignore={"send_email": ["name", "duration"]},
         refused={"kfp": r"^exit sub-pipeline 'exit-handler' .*: an exit handler of several "
                         r"steps cannot be expressed on KFP v2"}),
    Port("hera_conditional_on_task_status", hera_conditional_on_task_status,
         ({"force_result": "failure"}, {"force_result": "success"}),
         refused={"kfp": r"step 'failure' .*on='failure': a status-conditioned step .*KFP v2"}),
    Port("argo_memoize", argo_memoize, ({}, {"message": "hello"}),
         refused={"kfp": r"step 'whalesay' .*cache max age.*KFP v2"}),
    Port("hera_dynamic_fanout", hera_dynamic_fanout, ({"force_count": 3}, {})),
    Port("hera_fan_in", hera_fan_in),
    Port("metaflow_helloworld", metaflow_helloworld),
    Port("metaflow_complex_flow", metaflow_complex_flow),
    Port("metaflow_statistics", metaflow_statistics),
    Port("kfp_loop_static", kfp_loop_static, ({}, {"greeting": "hi"})),
    Port("kfp_parallelfor_parallelism", kfp_parallelfor_parallelism,
         ({"loop_parameter": ["a", "b", "c"]}, {"loop_parameter": ["x"]})),
]
PORTS += [
    Port("argo_parameter_aggregation", argo_parameter_aggregation,
         refused={"kfp": r"step 'divide_by_2' .*maps over collect\(odd_or_even\.results\): a map "
                         r"over a mapped step's collected results cannot be expressed on KFP v2"}),
]

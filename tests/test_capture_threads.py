"""Output of the threads a handler starts lands in its run's log, and in no other run's."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from mlflowlet import new_runner


def _run(handler, name):
    return new_runner().run(handler=handler, name=name)


def test_a_thread_the_handler_starts_writes_to_its_run_and_nothing_after_the_end():
    go, late, holder = threading.Event(), [], []

    def helper():
        print("from the helper thread")
        timer = threading.Timer(0, print, args=("from a timer it started",))
        timer.start()
        timer.join()

    def after_the_end():
        go.wait()
        print("printed after the run ended")

    def train(context):
        holder.append(context)
        t = threading.Thread(target=helper)
        t.start()
        t.join()
        late.append(threading.Thread(target=after_the_end))
        late[0].start()
        context.logger.info("from the handler")

    run = _run(train, "train")
    go.set()
    late[0].join()
    log = run.logs()
    assert log.count("from the helper thread\n") == 1
    assert log.count("from a timer it started\n") == 1  # a thread's thread: the run's too
    assert "printed after the run ended" not in log
    assert holder[0]._recorder.output == []  # held for no retry of the final record either
    other = _run(lambda context: print("the next run"), "next")
    assert "from the helper thread" not in other.logs()


def test_a_pool_task_writes_to_the_run_that_submitted_it_whichever_worker_runs_it():
    # a pool's worker started in one run serves later runs and threads outside any run
    pool, outside = ThreadPoolExecutor(1), []
    submitted, done = threading.Event(), threading.Event()

    def outsider():  # started before any run: it belongs to none
        submitted.wait()
        pool.submit(print, "from a thread of no run").result()
        done.set()

    outside.append(threading.Thread(target=outsider))
    outside[0].start()

    def first(context):
        pool.submit(print, "task of the first run").result()  # starts the pool's one worker
        submitted.set()
        done.wait()

    def second(context):
        pool.submit(print, "task of the second run").result()

    one, two = _run(first, "first"), _run(second, "second")
    outside[0].join()
    pool.shutdown()
    assert one.logs().count("task of the first run") == 1
    assert "from a thread of no run" not in one.logs()
    assert "task of the second run" not in one.logs()
    assert two.logs().count("task of the second run\n") == 1


def test_mlflowlets_own_threads_started_in_a_run_do_not_copy_into_its_log(tmp_path):
    # the output pump of a nested subprocess run echoes the child's lines: they are the
    # child run's, and copied into the parent's log too they would be recorded twice
    (tmp_path / "child.py").write_text("def train(context):\n    print('child line')\n")
    children = []

    def parent(context):
        children.append(
            new_runner(str(tmp_path / "child.py"), kind="subprocess").run(handler="train"))
        print("parent line")

    run = _run(parent, "parent")
    assert children[0].logs() == "child line\n"
    assert run.logs() == "parent line\n"

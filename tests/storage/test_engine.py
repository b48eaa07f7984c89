"""The SQLite engine's writer thread survives callers that give up."""

import threading

from trialplane.server.storage.sqlite.engine import Engine


def test_a_cancelled_write_is_skipped_and_the_writer_keeps_going(tmp_path):
    engine = Engine(str(tmp_path / "e.db"), readers=1)
    engine.writer_connection.execute("CREATE TABLE t (x INTEGER)")
    engine.start()
    try:
        release = threading.Event()
        blocker = engine.submit(lambda tx: release.wait(10))
        gone = engine.submit(lambda tx: tx.run("INSERT INTO t VALUES (1)"))
        assert gone.cancel()  # the caller gives up while the writer is busy
        release.set()
        assert blocker.result(10) is True
        later = engine.submit(lambda tx: tx.run("INSERT INTO t VALUES (2)"))
        assert later.result(10) == 1
        rows = engine.submit(lambda tx: tx.all("SELECT x FROM t")).result(10)
        assert [r[0] for r in rows] == [2]
    finally:
        engine.close()

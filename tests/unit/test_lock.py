from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from leakfree.lock import Owner, WarehouseBusy, exclusive


def test_a_second_run_stops_at_once_with_a_clear_message(tmp_path):
    busy = pytest.raises(WarehouseBusy, match=r"in use by run night-1 \(pid \d+ on ")
    with exclusive(str(tmp_path), "night-1"), busy, exclusive(str(tmp_path), "x"):
        pass
    assert not (tmp_path / "_lock").exists()
    with exclusive(str(tmp_path), "night-2"):  # free again once released
        assert json.loads((tmp_path / "_lock").read_text())["run_id"] == "night-2"


def test_a_lock_left_by_a_dead_run_is_released(tmp_path, caplog):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    owner = Owner.me("crashed")
    (tmp_path / "_lock").write_text(json.dumps({**owner.__dict__, "pid": int(dead.stdout)}))
    with exclusive(str(tmp_path), "next"):
        assert json.loads((tmp_path / "_lock").read_text())["run_id"] == "next"
    assert "released a lock left by run crashed" in caplog.text


def test_a_reused_pid_is_not_mistaken_for_the_owner(tmp_path):
    owner = Owner.me("old")
    (tmp_path / "_lock").write_text(json.dumps({**owner.__dict__, "pid": os.getpid(), "started": "1"}))
    with exclusive(str(tmp_path), "new"):  # same pid as ours, but a process started at another time
        pass


def test_another_hosts_lock_is_stale_only_after_its_heartbeat_stops(tmp_path):
    (tmp_path / "_lock").write_text(json.dumps({**Owner.me("far").__dict__, "host": "elsewhere"}))
    with pytest.raises(WarehouseBusy, match="far"), exclusive(str(tmp_path), "here", stale_after_s=60):
        pass
    old = os.stat(tmp_path / "_lock").st_mtime - 120
    os.utime(tmp_path / "_lock", (old, old))
    with exclusive(str(tmp_path), "here", stale_after_s=60):
        pass

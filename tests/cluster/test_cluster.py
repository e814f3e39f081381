"""A real Spark standalone cluster on this machine (a master and two workers on loopback),
the jobs submitted with spark-submit, the package shipped as a wheel and the Delta JARs on
the classpath. Run with `make test-cluster`."""

from __future__ import annotations

import glob
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deltalake import DeltaTable

from leakfree.demo import write_audio, write_demo_library
from leakfree.session import CHECKOUT_JARS
from tests.expect import finished

pytestmark = pytest.mark.cluster
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    work = tmp_path_factory.mktemp("cluster")
    env = {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_HOME": str(spark_home()),
    }
    port = free_port()
    master_url = f"spark://127.0.0.1:{port}"
    spark_class = str(spark_home() / "bin" / "spark-class")
    logs = [open(work / f"{name}.log", "w") for name in ("master", "worker1", "worker2")]  # noqa: SIM115
    processes = [
        subprocess.Popen(
            [
                spark_class,
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--webui-port",
                str(free_port()),
            ],
            env=env,
            stdout=logs[0],
            stderr=subprocess.STDOUT,
        )
    ]
    time.sleep(5)
    for i in (1, 2):
        processes.append(
            subprocess.Popen(
                [
                    spark_class,
                    "org.apache.spark.deploy.worker.Worker",
                    master_url,
                    "--cores",
                    "1",
                    "--memory",
                    "2g",
                    "--webui-port",
                    str(free_port()),
                    "--work-dir",
                    str(work / f"worker{i}"),
                ],
                env=env,
                stdout=logs[i],
                stderr=subprocess.STDOUT,
            )
        )
    deadline = time.time() + 120
    while time.time() < deadline and (work / "master.log").read_text().count("Registering worker") < 2:
        time.sleep(1)
    registered = (work / "master.log").read_text().count("Registering worker")
    wheel_dir = work / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir), str(REPO)],
        check=True,
        env=env,
        capture_output=True,
    )
    yield {
        "url": master_url,
        "env": env,
        "work": work,
        "wheel": next(wheel_dir.glob("leakfree-*.whl")),
        "workers": registered,
    }
    for p in processes:
        p.terminate()
    for p in processes:
        p.wait(timeout=30)
    for f in logs:
        f.close()


def submit(cluster, job: str, *args: str) -> subprocess.CompletedProcess:
    jars = ",".join(sorted(glob.glob(str(CHECKOUT_JARS / "*.jar"))))
    command = [
        str(spark_home() / "bin" / "spark-submit"),
        "--master",
        cluster["url"],
        "--jars",
        jars,
        "--py-files",
        str(cluster["wheel"]),
        "--conf",
        f"spark.pyspark.python={sys.executable}",
        "--conf",
        "spark.executor.memory=1g",
        str(REPO / "jobs" / job),
        *args,
        "--set",
        "spark.progress_bar=false",
    ]
    return subprocess.run(command, env=cluster["env"], capture_output=True, text=True, timeout=1200)


def test_spark_submit_run_then_rescan_on_a_standalone_cluster(cluster):
    assert cluster["workers"] == 2, (cluster["work"] / "master.log").read_text()[-2000:]
    lib = cluster["work"] / "library"
    write_demo_library(lib, seed=5, originals=12)
    warehouse = cluster["work"] / "warehouse"
    common = ["--library", str(lib), "--metadata", str(lib / "metadata.csv"), "--warehouse", str(warehouse)]
    first = submit(cluster, "run.py", *common, "--run-id", "first")
    assert first.returncode == 0, first.stderr[-4000:]
    catalog = DeltaTable(str(warehouse / "catalog")).to_pyarrow_table()
    assert catalog.num_rows == len(list(lib.rglob("*.*"))) - 4  # all but the two broken files and two CSVs
    splits = DeltaTable(str(warehouse / "splits")).to_pyarrow_table()
    assert splits.num_rows == catalog.num_rows
    assert "Registering app leakfree" in (cluster["work"] / "master.log").read_text()  # the cluster ran it

    import numpy as np

    write_audio(lib / "late" / "new.wav", np.random.default_rng(1).standard_normal(44100) * 0.1, 44100)
    second = submit(cluster, "rescan.py", *common, "--run-id", "second")
    assert second.returncode == 0, second.stderr[-4000:]
    runs = {r["run_id"]: r for r in DeltaTable(str(warehouse / "runs")).to_pyarrow_table().to_pylist()}
    assert all(finished(runs[r]["status"], runs[r]["message"]) for r in ("first", "second"))
    assert dict(runs["second"]["changes"])["new_files"] == 1
    assert "found: 0 changed files, 0 deleted files, 0 moved files, 1 new files" in second.stdout

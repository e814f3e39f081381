"""`leakfree sql` read-only as Spark parsed the statement, not as its text reads."""

from __future__ import annotations

import pytest
from delta.tables import DeltaTable
from pyspark.errors import AnalysisException

from leakfree import sqlpolicy, tables

pytestmark = pytest.mark.integration

BYPASSES = [
    "WITH x AS (SELECT '--' AS c) INSERT OVERWRITE splits SELECT * FROM splits WHERE false",
    "SELECT java_method('java.nio.file.Files', 'createTempDirectory', 'leakfree')",
    "SELECT * FROM splits WHERE split = (SELECT reflect('java.lang.System', 'getProperty', 'user.home'))",
    "SELECT * FROM text.`/etc/passwd`",
    "SELECT * FROM splits WHERE file_id IN (SELECT value FROM text.`/etc/passwd`)",
    "SELECT * FROM delta.`{warehouse}/splits`",
    "SELECT * FROM table_changes_by_path('{warehouse}/splits', 0)",
    "WITH x AS (SELECT * FROM table_changes_by_path('{warehouse}/splits', 0)) SELECT * FROM x",
    "DESCRIBE HISTORY '{warehouse}/splits'",
    "EXPLAIN INSERT INTO splits SELECT * FROM splits",
    "EXECUTE IMMEDIATE 'DELETE FROM splits'",
    "SELECT 1; DELETE FROM splits",
    "/* SELECT */ DELETE FROM splits",
    "MERGE INTO splits USING splits s ON splits.file_id = s.file_id WHEN MATCHED THEN DELETE",
    "SET spark.sql.runSQLOnFiles=true",
    "ADD JAR /tmp/nothing.jar",
    "SELECT TRANSFORM(file_id) USING 'touch /tmp/leakfree-owned' FROM splits",
    "CREATE TEMPORARY FUNCTION own AS 'org.example.Own'",
    "BEGIN DELETE FROM splits; END",
]
READS = [
    "SELECT split, count(*) FROM splits GROUP BY split",
    "WITH t AS (SELECT * FROM splits) SELECT count(*) FROM t JOIN catalog USING (file_id)",
    "SELECT '--; DROP TABLE splits' AS joke",
    "SELECT * FROM splits WHERE file_id IN (SELECT file_id FROM catalog) ORDER BY file_id LIMIT 2",
    "DESCRIBE splits",
    "DESCRIBE HISTORY splits",
    "SHOW TABLES",
    "SHOW COLUMNS IN catalog",
    "EXPLAIN SELECT * FROM splits",
    "SELECT count(*) FROM splits VERSION AS OF 0",
    "SELECT * FROM range(3)",
    "VALUES (1, 'a')",
]


@pytest.fixture(scope="module")
def warehouse(spark, tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("sqlwh"))
    spark.createDataFrame([("a", "train"), ("b", "test")], "file_id string, split string").write.format("delta").save(
        tables.table_path(folder, "splits")
    )
    spark.createDataFrame([("a", "/x/a.wav"), ("b", "/x/b.wav")], "file_id string, path string").write.format(
        "delta"
    ).save(tables.table_path(folder, "catalog"))
    return folder


def versions(spark, warehouse):
    return {
        name: DeltaTable.forPath(spark, tables.table_path(warehouse, name)).history(1).first().version
        for name in ("splits", "catalog")
    }


@pytest.mark.parametrize("allow_write", [False, True])
def test_every_bypass_is_refused_and_no_table_changes(spark, warehouse, allow_write, tmp_path):
    session = sqlpolicy.guarded_session(spark, warehouse)
    before = versions(spark, warehouse)
    for template in BYPASSES:
        statement = template.format(warehouse=warehouse)
        if allow_write and any(w in statement for w in ("INSERT", "MERGE", "/* SELECT */")):
            continue  # plain writes: --allow-write is there for them
        with pytest.raises(sqlpolicy.StatementRefused):
            sqlpolicy.execute(session, statement, allow_write=allow_write)
    assert versions(spark, warehouse) == before
    assert session.table("splits").count() == 2


@pytest.mark.parametrize("statement", READS)
def test_reading_statements_still_work(spark, warehouse, statement):
    session = sqlpolicy.guarded_session(spark, warehouse)
    assert sqlpolicy.execute(session, statement, allow_write=False).collect()


def test_the_engine_refuses_paths_and_reflection_without_the_check(spark, warehouse):
    session = sqlpolicy.guarded_session(spark, warehouse)
    for statement in (
        "SELECT * FROM text.`/etc/passwd`",
        f"SELECT * FROM delta.`{warehouse}/splits`",
        "SELECT java_method('java.lang.System', 'getProperty', 'user.home')",
        "SELECT reflect('java.lang.System', 'getProperty', 'user.home')",
    ):
        with pytest.raises(AnalysisException):
            session.sql(statement).collect()
    # The pipeline's own session is left as it was.
    assert spark.sql("SELECT java_method('java.lang.Math', 'abs', -2)").first()[0] == "2"


def test_allow_write_lifts_the_write_ban_only(spark, warehouse):
    session = sqlpolicy.guarded_session(spark, warehouse)
    with pytest.raises(sqlpolicy.StatementRefused, match="read-only"):
        sqlpolicy.execute(session, "DELETE FROM catalog WHERE file_id = 'b'", allow_write=False)
    before = versions(spark, warehouse)["catalog"]
    sqlpolicy.execute(session, "DELETE FROM catalog WHERE file_id = 'b'", allow_write=True)
    assert versions(spark, warehouse)["catalog"] > before
    assert session.table("catalog").count() == 1

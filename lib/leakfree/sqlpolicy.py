"""What `leakfree sql` may run, decided from the plan Spark parsed and backed by the engine.

A statement's text can hide a write (a `--` inside a string, a CTE before an INSERT), so the
check walks the unresolved logical plan instead: nodes, subqueries and the plans that commands
such as EXPLAIN hold. The session itself refuses SQL on raw paths and has no reflection
functions, so whatever the walk misses the engine still does not do.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pyspark.errors import ParseException, PySparkException
from pyspark.sql import DataFrame, SparkSession

from leakfree import tables
from leakfree.errors import LeakfreeError

# Parsed forms of SELECT, WITH, VALUES, TABLE and set operations.
QUERY_NODES = frozenset(
    {
        "Aggregate", "Deduplicate", "Distinct", "Except", "Expand", "Filter", "Generate", "GlobalLimit",
        "Intersect", "Join", "LateralJoin", "LocalLimit", "LocalRelation", "Offset", "OneRowRelation",
        "PipeOperator", "Pivot", "Project", "RebalancePartitions", "RelationTimeTravel", "Repartition",
        "RepartitionByExpression", "Sample", "Sort", "SubqueryAlias", "Tail", "Union", "UnresolvedHaving",
        "UnresolvedHint", "UnresolvedInlineTable", "UnresolvedRelation", "UnresolvedSubqueryColumnAliases",
        "UnresolvedTVFAliases", "UnresolvedTableValuedFunction", "UnresolvedWith", "Unpivot", "Window",
        "WithWindowDefinition", "CTERelationDef", "CTERelationRef", "UnresolvedWithCTERelations",
    }
)  # fmt: skip
# Commands that only describe.
READ_COMMANDS = frozenset(
    {
        "DescribeColumn", "DescribeDeltaDetailCommand", "DescribeDeltaHistory", "DescribeFunction",
        "DescribeNamespace", "DescribeQueryCommand", "DescribeRelation", "ExplainCommand", "ShowColumns",
        "ShowCreateTable", "ShowFunctions", "ShowNamespaces", "ShowPartitions", "ShowTableProperties",
        "ShowTables", "ShowTablesExtended", "ShowViews", "CurrentNamespace$", "UnresolvedFunctionName",
        "UnresolvedNamespace", "UnresolvedTable", "UnresolvedTableOrView", "UnresolvedView",
    }
)  # fmt: skip
# Refused even with --allow-write: they run code, change the session or hide another statement.
NEVER = frozenset(
    {
        "AddArchivesCommand", "AddFilesCommand", "AddJarsCommand", "CompoundBody", "CreateFunction",
        "CreateFunctionCommand", "ExecuteImmediateCommand", "ExecuteImmediateQuery", "ResetCommand",
        "ScriptTransformation", "SetCommand", "SetNamespaceCommand", "UnresolvedExecuteImmediate",
        "SetCatalogCommand", "SetVariable", "CreateVariable",
    }
)  # fmt: skip
NAMED_RELATIONS = frozenset({"UnresolvedRelation", "UnresolvedTable", "UnresolvedTableOrView", "UnresolvedView"})
TABLE_FUNCTIONS = frozenset(
    {"range", "explode", "explode_outer", "inline", "inline_outer", "posexplode", "posexplode_outer", "stack"}
)
REFLECTION_FUNCTIONS = ("reflect", "java_method", "try_reflect")


class StatementRefused(LeakfreeError):
    """A statement `leakfree sql` will not run, with the reason."""


def guarded_session(spark: SparkSession, warehouse: str) -> SparkSession:
    """A child session with the warehouse tables registered, locked down.

    A child has its own conf and function registry, so the lock-down never reaches the session
    the pipeline runs on.
    """
    session = spark.newSession()
    tables.register(session, warehouse)
    lock_down(session)
    return session


def execute(session: SparkSession, statement: str, *, allow_write: bool) -> DataFrame:
    """The statement's result, once the policy allows it; engine errors become messages."""
    check(session, statement, allow_write=allow_write)
    try:
        return session.sql(statement)
    except PySparkException as exc:
        raise StatementRefused(f"the statement failed: {str(exc).strip()}") from None


def lock_down(spark: SparkSession) -> None:
    """Make the session itself refuse raw-path SQL and JVM reflection."""
    spark.conf.set("spark.sql.runSQLOnFiles", "false")
    registry = spark._jsparkSession.sessionState().functionRegistry()
    functions = registry.listFunction().iterator()
    while functions.hasNext():
        identifier = functions.next()
        if identifier.funcName() in REFLECTION_FUNCTIONS:
            registry.dropFunction(identifier)


def check(spark: SparkSession, statement: str, *, allow_write: bool) -> None:
    """Raise StatementRefused unless the statement is a query over tables named in the session."""
    plan = _parse(spark, statement)
    for name, node, is_plan in _plan_nodes(plan):
        if not is_plan:
            if name == "UnresolvedFunction" and ".".join(_seq(node.nameParts())).lower() in REFLECTION_FUNCTIONS:
                raise StatementRefused("reflection functions (reflect, java_method) are not available")
            continue
        if name in NEVER:
            raise StatementRefused(f"`leakfree sql` does not run {name} statements, even with --allow-write")
        if "PathBased" in name:
            raise StatementRefused("`leakfree sql` reads tables by name only, not by path")
        if not allow_write and name not in QUERY_NODES and name not in READ_COMMANDS:
            raise StatementRefused(
                f"this statement ({name}) is not a query; `leakfree sql` is read-only unless --allow-write is given"
            )
        if name in NAMED_RELATIONS:
            parts = _seq(node.multipartIdentifier())
            if len(parts) != 1:
                shown = ".".join(f"`{p}`" for p in parts)
                raise StatementRefused(
                    f"{shown} is not a table name; `leakfree sql` reads the warehouse tables by name"
                )
        if name == "UnresolvedTableValuedFunction":
            function = ".".join(_seq(node.name())).lower()
            if function not in TABLE_FUNCTIONS:
                raise StatementRefused(f"table function {function} is not allowed; allowed: {sorted(TABLE_FUNCTIONS)}")


def _parse(spark: SparkSession, statement: str) -> Any:
    try:
        return spark._jsparkSession.sessionState().sqlParser().parsePlan(statement)
    except ParseException as exc:
        raise StatementRefused(f"cannot parse the statement: {str(exc).strip()}") from None


def _plan_nodes(plan: Any) -> Iterator[tuple[str, Any, bool]]:
    """Every node of a parsed plan and of the plans it holds, expressions included: (name, node, is_plan)."""
    pending = [plan]
    kinds: dict[str, tuple[bool, bool]] = {}
    while pending:
        node = pending.pop()
        name = str(node.nodeName())
        class_name = str(node.getClass().getName())
        if class_name not in kinds:
            ancestors = _ancestors(node)
            kinds[class_name] = (_LOGICAL_PLAN in ancestors, _SUBQUERY in ancestors)
        is_plan, is_subquery = kinds[class_name]
        yield name, node, is_plan
        pending.extend(_seq(node.children()))
        if is_plan:
            pending.extend(_seq(node.expressions()))
        if is_subquery:
            pending.append(node.plan())
        # Plans a node holds outside its children: CTE bodies, EXPLAIN's statement, ...
        pending.extend(_seq(node.innerChildren()))
        if name == "ExplainCommand":
            pending.append(node.logicalPlan())
        elif name == "RelationTimeTravel":
            pending.append(node.relation())


_LOGICAL_PLAN = "org.apache.spark.sql.catalyst.plans.logical.LogicalPlan"
_SUBQUERY = "org.apache.spark.sql.catalyst.expressions.SubqueryExpression"


def _ancestors(node: Any) -> set[str]:
    names = set()
    cls = node.getClass()
    while cls is not None:
        names.add(str(cls.getName()))
        cls = cls.getSuperclass()
    return names


def _seq(scala_seq: Any) -> list[Any]:
    items = []
    iterator = scala_seq.iterator()
    while iterator.hasNext():
        items.append(iterator.next())
    return items

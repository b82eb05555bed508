"""Tests for the configuration loader (edgelet.config) and the binding config modules.

Each error test asserts on what a user needs from the message: the file, the key path
and a fix. Everything runs on small files in tmp_path; nothing is started.
"""

from __future__ import annotations

import logging
import pickle
import textwrap
from pathlib import Path

import pytest
from edgelet.bindings.assets.config import Assets
from edgelet.bindings.durable_objects.config import DurableObjectBinding
from edgelet.bindings.kv.config import KVNamespace
from edgelet.bindings.queues.config import QueueConsumer, QueueProducer
from edgelet.bindings.services.config import ServiceBinding
from edgelet.bindings.workflows.config import WorkflowBinding
from edgelet.config import (
    ConfigError,
    Limits,
    PlatformConfig,
    Section,
    WorkerConfig,
    find_config,
    load_config,
    load_config_dict,
    script_classes,
)

SCRIPT = """\
from workers import DurableObject, WorkerEntrypoint, WorkflowEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return None


class Counter(DurableObject):
    pass


class Pipeline(WorkflowEntrypoint):
    pass


class Admin(WorkerEntrypoint):
    pass
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with two scripts, ready for a config file; also the cwd, as when
    running ``edgelet dev`` there (so messages show paths relative to it)."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "workers" / "api.py", SCRIPT)
    write(tmp_path / "workers" / "jobs.py", "class Jobs:\n    pass\n")
    return tmp_path


def load_toml(folder: Path, text: str, name: str = "wrangler_like.toml") -> PlatformConfig:
    write(folder / name, text)
    return load_config(cwd=folder)


def toml_error(folder: Path, text: str, name: str = "wrangler_like.toml") -> str:
    with pytest.raises(ConfigError) as info:
        load_toml(folder, text, name)
    return str(info.value)


def dict_error(folder: Path, data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        load_config_dict(data, base_dir=folder, name="wrangler_like.toml")
    return str(info.value)


def worker(name: str = "api", main: str = "workers/api.py", **extra: object) -> dict:
    return {"name": name, "main": main, **extra}


# --------------------------------------------------------------------------------------
# discovery and file formats
# --------------------------------------------------------------------------------------


def test_discovery_order(app: Path) -> None:
    for name in ("wrangler.jsonc", "wrangler.json", "wrangler.toml", "wrangler_like.toml"):
        write(app / name, "")
        assert find_config(app) == (app / name).resolve()


def test_discovery_none_found_names_all_four(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        find_config(tmp_path)
    message = str(info.value)
    for name in ("wrangler_like.toml", "wrangler.toml", "wrangler.json", "wrangler.jsonc"):
        assert name in message
    assert "Fix:" in message and "-c" in message


def test_single_worker_toml(app: Path) -> None:
    config = load_toml(
        app,
        """
        name = "api"
        main = "workers/api.py"
        compatibility_date = "2025-03-01"
        compatibility_flags = ["python_workers"]
        """,
    )
    w = config.primary
    assert w.name == "api"
    assert w.main == (app / "workers" / "api.py").resolve()
    assert w.main.is_absolute() and w.config_file == (app / "wrangler_like.toml").resolve()
    assert w.compatibility_date == "2025-03-01"
    assert w.compatibility_flags == ["python_workers"]
    assert w.limits == Limits() and w.crons == [] and w.bindings == {}
    assert not w.is_wasm
    assert config.files == [(app / "wrangler_like.toml").resolve()]


def test_wasm_main(app: Path) -> None:
    (app / "mod.wasm").write_bytes(b"\0asm\1\0\0\0")
    config = load_config_dict(worker(main="mod.wasm"), base_dir=app)
    assert config.primary.is_wasm


def test_workers_tables(app: Path) -> None:
    config = load_toml(
        app,
        """
        [[workers]]
        name = "api"
        main = "workers/api.py"

        [[workers]]
        name = "jobs"
        main = "workers/jobs.py"
        """,
    )
    assert [w.name for w in config.workers] == ["api", "jobs"]
    assert config.primary.name == "api"
    assert config.worker("jobs").main.name == "jobs.py"
    with pytest.raises(KeyError, match="known: api, jobs"):
        config.worker("nope")


def test_top_level_binding_beside_workers_tables_is_an_error(app: Path) -> None:
    message = toml_error(
        app,
        """
        kv_namespaces = [{binding = "KV", id = "x"}]

        [[workers]]
        name = "api"
        main = "workers/api.py"
        """,
    )
    assert "wrangler_like.toml: kv_namespaces:" in message
    assert "[[workers]]" in message and "Fix:" in message


def test_repeated_config_files_concatenate(app: Path) -> None:
    write(app / "a.toml", 'name = "api"\nmain = "workers/api.py"\n')
    write(app / "sub" / "b.toml", 'name = "jobs"\nmain = "../workers/jobs.py"\n')
    config = load_config(["a.toml", "sub/b.toml"], cwd=app)
    assert [w.name for w in config.workers] == ["api", "jobs"]
    assert config.primary.name == "api"
    assert config.worker("jobs").config_file == (app / "sub" / "b.toml").resolve()
    assert len(config.files) == 2


def test_missing_config_path(app: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(["nope.toml"], cwd=app)
    assert "nope.toml" in str(info.value) and "not found" in str(info.value)


def test_duplicate_worker_names_across_files(app: Path) -> None:
    write(app / "a.toml", 'name = "api"\nmain = "workers/api.py"\n')
    write(app / "b.toml", 'name = "api"\nmain = "workers/jobs.py"\n')
    with pytest.raises(ConfigError) as info:
        load_config(["a.toml", "b.toml"], cwd=app)
    message = str(info.value)
    assert "b.toml: name:" in message and "a.toml" in message and "Fix:" in message


def test_jsonc_with_comments_and_trailing_commas(app: Path) -> None:
    write(
        app / "wrangler.jsonc",
        """
        {
          // the API worker
          "name": "api",
          "main": "workers/api.py", /* block comment */
          "vars": {"MODE": "dev", "LIMITS": {"n": 3},},
          "kv_namespaces": [{"binding": "CACHE", "id": "c1"},],
        }
        """,
    )
    config = load_config(cwd=app)
    w = config.primary
    assert w.vars == {"MODE": "dev", "LIMITS": {"n": 3}}
    assert w.decls("kv") == [KVNamespace(binding="CACHE", id="c1")]


def test_malformed_json_names_file_and_line(app: Path) -> None:
    write(app / "wrangler.json", '{\n  "name": "api",\n  "main": \n}\n')
    with pytest.raises(ConfigError) as info:
        load_config(cwd=app)
    message = str(info.value)
    assert "wrangler.json:4" in message and "invalid JSON" in message and "Fix:" in message


def test_malformed_toml_names_file_and_line(app: Path) -> None:
    message = toml_error(app, 'name = "api"\nmain = \n')
    assert "wrangler_like.toml:2:" in message
    assert "invalid TOML" in message and "Fix:" in message


def test_config_error_parts_and_pickle(tmp_path: Path) -> None:
    err = ConfigError(tmp_path / "w.toml", "kv_namespaces[0].id", "expected a string, got 42", "set id")
    assert str(err).endswith("w.toml: kv_namespaces[0].id: expected a string, got 42. Fix: set id.")
    clone = pickle.loads(pickle.dumps(err))
    assert str(clone) == str(err) and clone.key == err.key


# --------------------------------------------------------------------------------------
# common keys
# --------------------------------------------------------------------------------------


def test_missing_name(app: Path) -> None:
    message = dict_error(app, {"main": "workers/api.py"})
    assert "wrangler_like.toml: name: required key is missing" in message and "Fix: add name =" in message


def test_invalid_name(app: Path) -> None:
    message = dict_error(app, worker(name="My Worker"))
    assert "name:" in message and "not a valid Worker name" in message and "Fix:" in message


def test_missing_main(app: Path) -> None:
    message = dict_error(app, {"name": "api"})
    assert "wrangler_like.toml: main: required key is missing" in message and "Fix:" in message


def test_main_file_absent(app: Path) -> None:
    message = toml_error(
        app,
        """
        [[workers]]
        name = "api"
        main = "workers/api.py"

        [[workers]]
        name = "gone"
        main = "workers/gone.py"
        """,
    )
    assert "wrangler_like.toml: workers[1].main:" in message
    assert "workers/gone.py does not exist" in message and "Fix:" in message


def test_main_wrong_suffix(app: Path) -> None:
    write(app / "workers" / "x.js", "")
    message = dict_error(app, worker(main="workers/x.js"))
    assert "main:" in message and ".py" in message


def test_bad_compatibility_date(app: Path) -> None:
    message = dict_error(app, worker(compatibility_date="2025-13-40"))
    assert "compatibility_date:" in message and "YYYY-MM-DD" in message


def test_vars_strings_and_json(app: Path) -> None:
    config = load_toml(
        app,
        """
        name = "api"
        main = "workers/api.py"

        [vars]
        GREETING = "hello"
        RETRIES = 3
        DEBUG = true
        SETTINGS = { region = "eu", tiers = [1, 2] }
        """,
    )
    assert config.primary.vars == {
        "GREETING": "hello",
        "RETRIES": 3,
        "DEBUG": True,
        "SETTINGS": {"region": "eu", "tiers": [1, 2]},
    }


def test_vars_non_json_value(app: Path) -> None:
    message = toml_error(app, 'name = "api"\nmain = "workers/api.py"\n[vars]\nWHEN = 2024-01-01\n')
    assert "vars.WHEN:" in message and "Fix:" in message


def test_dev_vars_become_secrets_for_every_worker(app: Path) -> None:
    write(
        app / ".dev.vars",
        """\
        # local secrets
        API_TOKEN=abc123
        QUOTED="two words"
        ESCAPED="line1\\nline2"
        SINGLE='raw\\n'
        export EXPORTED=yes  # a comment

        EMPTY=
        """,
    )
    config = load_config_dict({"workers": [worker(), worker(name="jobs", main="workers/jobs.py")]}, base_dir=app)
    expected = {
        "API_TOKEN": "abc123",
        "QUOTED": "two words",
        "ESCAPED": "line1\nline2",
        "SINGLE": "raw\\n",
        "EXPORTED": "yes",
        "EMPTY": "",
    }
    assert config.worker("api").secrets == expected
    assert config.worker("jobs").secrets == expected


def test_dev_vars_bad_line(app: Path) -> None:
    write(app / ".dev.vars", "OK=1\nnot a pair\n")
    message = dict_error(app, worker())
    assert ".dev.vars:2" in message and "KEY=VALUE" in message and "Fix:" in message


def test_secret_overrides_var_but_not_binding(app: Path) -> None:
    write(app / ".dev.vars", "MODE=secret\nCACHE=oops\n")
    config = load_config_dict(worker(vars={"MODE": "dev"}), base_dir=app)
    assert config.primary.secrets["MODE"] == "secret"
    message = dict_error(app, worker(kv_namespaces=[{"binding": "CACHE", "id": "c"}]))
    assert "kv_namespaces[0]:" in message and "'CACHE'" in message and ".dev.vars line 2" in message


def test_crons(app: Path) -> None:
    config = load_toml(
        app,
        """
        name = "api"
        main = "workers/api.py"
        triggers = { crons = ["*/5 * * * *", "0 12 * * MON"] }
        """,
    )
    assert config.primary.crons == ["*/5 * * * *", "0 12 * * MON"]


@pytest.mark.parametrize("cron", ["every minute", "61 * * * *", "* * * *", "0 0 31 2 *"])
def test_bad_cron(app: Path, cron: str) -> None:
    message = dict_error(app, worker(triggers={"crons": ["* * * * *", cron]}))
    assert "wrangler_like.toml: triggers.crons[1]:" in message
    assert "not a valid cron expression" in message and "Fix:" in message


def test_limits(app: Path) -> None:
    config = load_config_dict(worker(limits={"cpu_ms": 50, "memory_mb": 128}), base_dir=app)
    assert config.primary.limits == Limits(cpu_ms=50, memory_mb=128, request_timeout_ms=60_000)
    message = dict_error(app, worker(limits={"cpu_ms": 0}))
    assert "limits.cpu_ms:" in message and "between 1 and" in message


def test_unknown_key_warns_but_loads(app: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edgelet.config")
    config = load_toml(
        app,
        """
        name = "api"
        main = "workers/api.py"
        account_id = "ignored silently"
        vectorize = [{binding = "V", index_name = "i"}]
        kv_namespaces = [{binding = "KV", id = "k", colour = "blue"}]
        """,
    )
    assert config.primary.name == "api"
    messages = [r.getMessage() for r in caplog.records]
    assert any("wrangler_like.toml" in m and "'vectorize'" in m for m in messages)
    assert any("'colour' in kv_namespaces[0]" in m for m in messages)
    assert not any("account_id" in m for m in messages)


def test_duplicate_binding_name_across_kinds(app: Path) -> None:
    message = toml_error(
        app,
        """
        name = "api"
        main = "workers/api.py"
        kv_namespaces = [{binding = "STORE", id = "s"}]
        services = [{binding = "STORE", service = "api"}]
        """,
    )
    assert "wrangler_like.toml: services[0]:" in message
    assert "'STORE'" in message and "kv_namespaces[0]" in message and "Fix:" in message


def test_duplicate_binding_name_with_var(app: Path) -> None:
    message = dict_error(app, worker(vars={"KV": "x"}, kv_namespaces=[{"binding": "KV"}]))
    assert "kv_namespaces[0]" in message and "vars.KV" in message


# --------------------------------------------------------------------------------------
# Section typed getters
# --------------------------------------------------------------------------------------


def test_section_type_errors(tmp_path: Path) -> None:
    s = Section(tmp_path / "w.toml", "workers[1]", {"n": True, "f": 2.5, "s": 42, "l": ["a", 1], "t": 3})
    with pytest.raises(ConfigError, match=r"workers\[1\]\.n: expected a whole number, got true"):
        s.int("n")
    with pytest.raises(ConfigError, match=r"expected a whole number, got 2\.5"):
        s.int("f")
    assert s.number("f") == 2.5
    with pytest.raises(ConfigError, match="expected a string, got 42"):
        s.str("s")
    with pytest.raises(ConfigError, match=r"workers\[1\]\.l\[1\]: expected a string"):
        s.str_list("l")
    with pytest.raises(ConfigError, match="expected a list of tables"):
        s.tables("t")
    with pytest.raises(ConfigError, match="expected true or false"):
        s.bool("s")
    assert s.str("missing", default="d") == "d" and s.table("missing") is None and s.tables("missing") == []


# --------------------------------------------------------------------------------------
# binding tables
# --------------------------------------------------------------------------------------


def test_kv_namespaces(app: Path) -> None:
    config = load_config_dict(
        worker(kv_namespaces=[{"binding": "A", "id": "ns1", "preview_id": "p"}, {"binding": "B"}]), base_dir=app
    )
    assert config.primary.decls("kv") == [
        KVNamespace(binding="A", id="ns1", preview_id="p"),
        KVNamespace(binding="B", id="B"),
    ]


def test_kv_wrong_type(app: Path) -> None:
    message = toml_error(
        app,
        """
        name = "api"
        main = "workers/api.py"
        kv_namespaces = [{binding = "A", id = 42}]
        """,
    )
    assert message.startswith("wrangler_like.toml: kv_namespaces[0].id: expected a string, got 42. Fix: set id")


def test_bad_binding_name(app: Path) -> None:
    message = dict_error(app, worker(kv_namespaces=[{"binding": "my-kv"}]))
    assert "kv_namespaces[0].binding:" in message and "not a valid binding name" in message


def test_queues(app: Path) -> None:
    config = load_toml(
        app,
        """
        name = "api"
        main = "workers/api.py"

        [[queues.producers]]
        binding = "JOBS"
        queue = "jobs"
        delivery_delay = 5

        [[queues.consumers]]
        queue = "jobs"
        max_batch_size = 20
        max_batch_timeout = 0.5
        dead_letter_queue = "jobs-dlq"

        [[queues.consumers]]
        queue = "jobs-dlq"
        """,
    )
    decls = config.primary.decls("queues")
    assert decls[0] == QueueProducer(binding="JOBS", queue="jobs", delivery_delay=5)
    assert decls[1] == QueueConsumer(
        queue="jobs",
        max_batch_size=20,
        max_batch_timeout=0.5,
        max_retries=3,
        dead_letter_queue="jobs-dlq",
        max_concurrency=None,
        retry_delay=None,
    )
    # a dead-letter queue needs no producer of its own
    assert decls[2] == QueueConsumer(queue="jobs-dlq")
    assert isinstance(decls[2].max_batch_timeout, float)


def test_queue_wrong_type(app: Path) -> None:
    message = toml_error(
        app,
        """
        name = "api"
        main = "workers/api.py"
        [[queues.producers]]
        binding = "JOBS"
        queue = "jobs"
        [[queues.consumers]]
        queue = "jobs"
        max_batch_size = "ten"
        """,
    )
    assert "wrangler_like.toml: queues.consumers[0].max_batch_size:" in message
    assert 'expected a whole number, got "ten"' in message and "Fix:" in message


@pytest.mark.parametrize(
    ("key", "value", "bounds"),
    [
        ("max_batch_size", 101, "between 1 and 100"),
        ("max_batch_timeout", 61, "between 0 and 60"),
        ("max_retries", -1, "between 0 and 100"),
        ("max_concurrency", 0, "between 1 and 250"),
        ("retry_delay", 50_000, "between 0 and 43200"),
    ],
)
def test_queue_out_of_range(app: Path, key: str, value: int, bounds: str) -> None:
    queues = {"producers": [{"binding": "Q", "queue": "q"}], "consumers": [{"queue": "q", key: value}]}
    message = dict_error(app, worker(queues=queues))
    assert f"queues.consumers[0].{key}: must be {bounds}" in message and "Fix:" in message


def test_consumer_without_producer(app: Path) -> None:
    message = dict_error(
        app,
        {
            "workers": [
                worker(),
                worker(name="jobs", main="workers/jobs.py", queues={"consumers": [{"queue": "orphan"}]}),
            ]
        },
    )
    assert "wrangler_like.toml: workers[1].queues.consumers[0].queue:" in message
    assert "'orphan'" in message and "add a producer binding" in message and "remove the consumer" in message


def test_producer_in_another_worker_satisfies_consumer(app: Path) -> None:
    config = load_config_dict(
        {
            "workers": [
                worker(queues={"producers": [{"binding": "Q", "queue": "q"}]}),
                worker(name="jobs", main="workers/jobs.py", queues={"consumers": [{"queue": "q"}]}),
            ]
        },
        base_dir=app,
    )
    assert config.worker("jobs").decls("queues") == [QueueConsumer(queue="q")]


def test_two_consumers_of_one_queue(app: Path) -> None:
    message = dict_error(
        app,
        {
            "workers": [
                worker(queues={"producers": [{"binding": "Q", "queue": "q"}], "consumers": [{"queue": "q"}]}),
                worker(name="jobs", main="workers/jobs.py", queues={"consumers": [{"queue": "q"}]}),
            ]
        },
    )
    assert "workers[1].queues.consumers[0].queue:" in message and "already has a consumer" in message
    assert "'api'" in message and "Fix:" in message


def test_durable_objects(app: Path) -> None:
    config = load_toml(
        app,
        """
        [[workers]]
        name = "api"
        main = "workers/api.py"
        durable_objects.bindings = [{name = "COUNTER", class_name = "Counter"}]
        migrations = [{tag = "v1", new_sqlite_classes = ["Counter"]}]

        [[workers]]
        name = "jobs"
        main = "workers/jobs.py"
        durable_objects.bindings = [{name = "COUNTER", class_name = "Counter", script_name = "api"}]
        """,
    )
    assert config.worker("api").decls("durable_objects") == [DurableObjectBinding("COUNTER", "Counter", None)]
    assert config.worker("jobs").decls("durable_objects") == [DurableObjectBinding("COUNTER", "Counter", "api")]


def test_durable_object_class_not_defined(app: Path) -> None:
    message = toml_error(
        app,
        """
        [[workers]]
        name = "jobs"
        main = "workers/jobs.py"

        [[workers]]
        name = "api"
        main = "workers/api.py"
        durable_objects.bindings = [{name = "ROOM", class_name = "Room"}]
        """,
    )
    assert message == (
        "wrangler_like.toml: workers[1].durable_objects.bindings[0].class_name: class 'Room' is not "
        "defined in workers/api.py. Fix: define class Room in workers/api.py or correct class_name."
    )


def test_durable_object_unknown_script(app: Path) -> None:
    message = dict_error(
        app, worker(durable_objects={"bindings": [{"name": "C", "class_name": "Counter", "script_name": "nope"}]})
    )
    assert "durable_objects.bindings[0].script_name:" in message and "'nope'" in message and "-c" in message


def test_class_check_skipped_for_wasm(app: Path) -> None:
    (app / "mod.wasm").write_bytes(b"\0asm\1\0\0\0")
    config = load_config_dict(
        worker(main="mod.wasm", durable_objects={"bindings": [{"name": "C", "class_name": "Anything"}]}), base_dir=app
    )
    assert config.primary.decls("durable_objects")[0].class_name == "Anything"


def test_workflows(app: Path) -> None:
    config = load_toml(
        app,
        """
        [[workers]]
        name = "api"
        main = "workers/api.py"
        [[workers.workflows]]
        name = "pipeline"
        binding = "PIPELINE"
        class_name = "Pipeline"
        concurrency = 4
        schedules = ["0 * * * *"]

        [[workers]]
        name = "jobs"
        main = "workers/jobs.py"
        workflows = [{name = "pipeline", binding = "PIPE", class_name = "Pipeline", script_name = "api"}]
        """,
    )
    assert config.worker("api").decls("workflows") == [
        WorkflowBinding(
            binding="PIPELINE",
            name="pipeline",
            class_name="Pipeline",
            script_name=None,
            concurrency=4,
            schedules=["0 * * * *"],
        )
    ]
    jobs = config.worker("jobs").decls("workflows")[0]
    assert jobs.script_name == "api" and jobs.concurrency == 50_000 and jobs.schedules == []


def test_workflow_class_not_defined(app: Path) -> None:
    message = dict_error(app, worker(workflows=[{"name": "w", "binding": "W", "class_name": "Missing"}]))
    assert "workflows[0].class_name: class 'Missing' is not defined in workers/api.py" in message
    assert "Fix: define class Missing" in message


def test_workflow_bad_schedule(app: Path) -> None:
    message = dict_error(
        app, worker(workflows=[{"name": "w", "binding": "W", "class_name": "Pipeline", "schedules": ["hourly"]}])
    )
    assert "workflows[0].schedules[0]:" in message and "cron" in message


def test_workflow_name_defined_twice_with_different_class(app: Path) -> None:
    message = dict_error(
        app,
        {
            "workers": [
                worker(workflows=[{"name": "w", "binding": "W", "class_name": "Pipeline"}]),
                worker(
                    name="jobs", main="workers/jobs.py", workflows=[{"name": "w", "binding": "W", "class_name": "Jobs"}]
                ),
            ]
        },
    )
    assert "workers[1].workflows[0].class_name:" in message and "workflow 'w' is already defined" in message
    assert "Fix:" in message


def test_services(app: Path) -> None:
    config = load_config_dict(
        {
            "workers": [
                worker(services=[{"binding": "JOBS", "service": "jobs"}]),
                worker(
                    name="jobs",
                    main="workers/jobs.py",
                    services=[{"binding": "API", "service": "api", "entrypoint": "Admin"}],
                ),
            ]
        },
        base_dir=app,
    )
    assert config.worker("api").decls("services") == [ServiceBinding("JOBS", "jobs", None)]
    assert config.worker("jobs").decls("services") == [ServiceBinding("API", "api", "Admin")]


def test_unknown_service(app: Path) -> None:
    message = dict_error(app, worker(services=[{"binding": "AUTH", "service": "auth"}]))
    assert "wrangler_like.toml: services[0].service: service 'auth' is not a Worker" in message
    assert "Fix: add it with -c or a [[workers]] table" in message


def test_service_entrypoint_not_defined(app: Path) -> None:
    message = dict_error(app, worker(services=[{"binding": "SELF", "service": "api", "entrypoint": "Nope"}]))
    assert "services[0].entrypoint: class 'Nope' is not defined in workers/api.py" in message


def test_assets(app: Path) -> None:
    (app / "public").mkdir()
    config = load_toml(
        app,
        """
        name = "api"
        main = "workers/api.py"
        assets = { directory = "./public", binding = "ASSETS" }
        """,
    )
    [assets] = config.primary.decls("assets")
    assert assets == Assets(directory=(app / "public").resolve(), binding="ASSETS")
    assert assets.directory.is_absolute()


def test_assets_directory_missing(app: Path) -> None:
    message = dict_error(app, worker(assets={"directory": "static"}))
    assert "assets.directory: static does not exist" in message and "Fix:" in message


def test_assets_must_be_a_table(app: Path) -> None:
    message = dict_error(app, worker(assets=[{"directory": "static"}]))
    assert "assets: expected a table" in message


# --------------------------------------------------------------------------------------
# scripts
# --------------------------------------------------------------------------------------


def test_script_classes(tmp_path: Path) -> None:
    script = write(
        tmp_path / "s.py",
        """
        from helpers import Imported
        import os

        class A:
            class Inner:
                pass

        try:
            class B:
                pass
        except ImportError:
            pass

        def f():
            class Hidden:
                pass
        """,
    )
    assert script_classes(script) == {"A", "B", "Imported"}


def test_script_syntax_error_points_at_line(app: Path) -> None:
    write(app / "workers" / "broken.py", "class Ok:\n    pass\n\ndef f(:\n")
    message = dict_error(
        app, worker(main="workers/broken.py", durable_objects={"bindings": [{"name": "C", "class_name": "Ok"}]})
    )
    assert "broken.py:4" in message and "syntax error" in message and "Fix:" in message


def test_worker_config_defaults(tmp_path: Path) -> None:
    w = WorkerConfig(name="x", main=tmp_path / "x.py", config_file=tmp_path / "w.toml")
    assert w.decls("kv") == [] and w.limits == Limits() and w.secrets == {}

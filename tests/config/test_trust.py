"""The trust gate: a config builds hydra_pipeline's objects, torch's optimizers and schedulers,
and the user's own code allowed by the application or the command line, and nothing else,
whichever route names it.

These tests run the startup checks on composed configs; ``tests/app/test_trust.py`` runs the
same routes through the command line and checks that nothing ran.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from typing import Any

import hydra
import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from hydra_pipeline import ConfigError
from hydra_pipeline.config import (
    SCHEMAS,
    AllowList,
    allowing,
    builder_of,
    check_config,
    instantiate_node,
)
from hydra_pipeline.config.checks import check_hydra_callbacks
from hydra_pipeline.config.hydra_settings import check_file_settings, sets_hydra
from hydra_pipeline.config.store import target_of
from hydra_pipeline.config.trust import buildable_objects

Compose = Callable[..., DictConfig]


def refused(cfg: DictConfig, allow: AllowList | None = None) -> str:
    """The message of the ConfigError the startup checks raise on ``cfg``."""
    with pytest.raises(ConfigError) as caught:
        check_config(cfg, allow)
    return str(caught.value)


class TestPackageObjects:
    def test_every_schema_target_is_buildable(self) -> None:
        """What a config may build is exactly the targets of the stored schemas."""
        targets = {target_of(schema.node) for schema in SCHEMAS} - {None}
        assert len(buildable_objects()) == len(targets)
        assert builder_of in buildable_objects()

    @pytest.mark.parametrize(
        "target",
        [
            "hydra_pipeline.config.builder.get_object",  # looks up any object by name
            "hydra_pipeline.config.checks.inspect.os.system",  # another module's object
            "hydra_pipeline.Builder",  # calls whatever class_type it is given
            "hydra_pipeline.pipeline.builder.recursive_update",
            "hydra_pipeline.engine.checkpoint.torch.load",
            "hydra_pipeline.app.cli.pipeline_app",
            "hydra_pipeline.config.trust.allowing",
        ],
    )
    def test_callables_under_the_package_prefix_are_not_buildable(
        self, compose: Compose, prepare: Any, target: str
    ) -> None:
        """A name starting with hydra_pipeline. is not enough: it must be a buildable object,
        even when the command line allows the package's prefix."""
        cfg = prepare(
            compose(
                "+loss@pipeline.named_losses.evil=imitation",
                f"pipeline.named_losses.evil._target_={target}",
            )
        )
        for allow in (AllowList(), AllowList.of(["hydra_pipeline"])):
            message = refused(cfg, allow)
            assert message.startswith(f"'pipeline.named_losses.evil' names '{target}'")
            assert "not an object a config may build" in message

    def test_a_buildable_object_under_another_of_its_names(
        self, compose: Compose, prepare: Any
    ) -> None:
        """The same class reached by its defining module's path is still buildable."""
        cfg = prepare(
            compose("pipeline._target_=hydra_pipeline.pipeline.training_pipeline.TrainingPipeline")
        )
        check_config(cfg, AllowList())
        assert type(instantiate_node(cfg, "pipeline")).__name__ == "TrainingPipeline"


class TestBuilderClasses:
    @pytest.mark.parametrize(
        "class_type",
        [
            "subprocess.Popen",
            "builtins.eval",
            "torch.optim.optimizer.torch.load",  # torch.load reached from torch.optim
            "torch.optim.swa_utils.AveragedModel",  # under torch.optim, not an optimizer
            "torch.optim.lr_scheduler.warnings.warn",
        ],
    )
    def test_only_torch_optimizers_and_schedulers(
        self, compose: Compose, prepare: Any, class_type: str
    ) -> None:
        """An optimizer config's class_type is what a Builder calls: it must be a torch
        optimizer or scheduler class (or allowed user code)."""
        cfg = prepare(compose(f"pipeline.optimizer_builder.class_type={class_type}"))
        message = refused(cfg)
        assert message.startswith("'pipeline.optimizer_builder' names")
        assert class_type in message

    def test_builder_under_another_name_still_checks_its_class(
        self, compose: Compose, prepare: Any
    ) -> None:
        """builder_of reached through its re-export still has its class_type checked."""
        cfg = prepare(
            compose(
                "+loss@pipeline.named_losses.evil=imitation",
                "pipeline.named_losses.evil._target_=hydra_pipeline.config.builder_of",
                "+pipeline.named_losses.evil.class_type=subprocess.getoutput",
            )
        )
        assert "subprocess.getoutput" in refused(cfg)

    @pytest.mark.parametrize(
        "override",
        ["optimizer=sgd", "optimizer=rmsprop", "lr_scheduler=cosine", "lr_scheduler=step"],
    )
    def test_torch_classes_are_accepted(
        self, compose: Compose, prepare: Any, override: str
    ) -> None:
        check_config(prepare(compose(override)), AllowList())


class TestUserCode:
    def test_own_target_accepted_once_allowed(
        self, compose: Compose, prepare: Any, tiny_loss_module: str
    ) -> None:
        """A user's _target_ is refused until the command line allows its module (or a parent
        package), then built."""
        overrides = [
            f"+pipeline.named_losses.tiny={{_target_:{tiny_loss_module}.TinyLoss,scale:2.0}}",
            "pipeline.pipeline_stages.1.loss_names=[ppo_loss,tiny]",
        ]
        message = refused(prepare(compose(*overrides)))
        assert f"allowed_targets='[{tiny_loss_module}]'" in message
        assert "a config file cannot extend the allow-list" in message

        package = tiny_loss_module.rsplit(".", 1)[0]
        for allowed in (tiny_loss_module, package):
            cfg = prepare(compose(*overrides, f"allowed_targets=[{allowed}]"))
            with allowing(AllowList.of([allowed])):
                check_config(cfg)
                pipeline = instantiate_node(cfg, "pipeline")
            tiny = pipeline.named_losses["tiny"]
            assert type(tiny).__module__ == tiny_loss_module
            assert tiny.scale == 2.0

    def test_allowed_module_does_not_reach_other_modules(
        self, compose: Compose, prepare: Any, tiny_loss_module: str
    ) -> None:
        """A path under an allowed module resolving to another module's object is refused."""
        target = f"{tiny_loss_module}.importlib.import_module"
        cfg = prepare(compose(f"pipeline.named_losses.ppo_loss._target_={target}"))
        message = refused(cfg, AllowList.of([tiny_loss_module]))
        assert "(defined in 'importlib')" in message

    def test_allowing_a_module_does_not_allow_its_neighbours(
        self, compose: Compose, prepare: Any
    ) -> None:
        """allowed_targets=[my] allows my.x, not myx.y (a prefix ends at a dot)."""
        cfg = prepare(compose("pipeline.named_losses.ppo_loss._target_=hydra_pipelinex.Loss"))
        message = refused(cfg, AllowList.of(["hydra_pipeline"]))
        assert re.search(r"'hydra_pipelinex\.Loss'.*outside the allowed import prefixes", message)


class TestConfigsCannotExtendTrust:
    @pytest.mark.parametrize("listed", ["[os]", "[os,subprocess]", "[my_project,os]"])
    def test_allowed_targets_not_given_by_the_command_line(
        self, compose: Compose, prepare: Any, listed: str
    ) -> None:
        """allowed_targets in a config (a file, a preset, a checkpoint) extends nothing the
        command line or the code did not allow."""
        cfg = prepare(compose(f"allowed_targets={listed}"))
        message = refused(cfg, AllowList())
        assert message.startswith("'allowed_targets' lists")
        assert "a config file or a checkpoint cannot extend the allow-list" in message

    def test_allowed_targets_the_command_line_gave(self, compose: Compose, prepare: Any) -> None:
        cfg = prepare(compose("allowed_targets=[my_project,other.sub]"))
        check_config(cfg, AllowList.of(["my_project"], ["other"]))

    def test_the_active_allow_list_is_used_by_default(self, compose: Compose, prepare: Any) -> None:
        cfg = prepare(compose("allowed_targets=[my_project]"))
        refused(cfg)
        with allowing(AllowList.of(["my_project"])):
            check_config(cfg)
        refused(cfg)


ESCAPED = r"'\${oc.create:{_target_:subprocess.getoutput,cmd:touch PWNED}}'"
LIVE = "'${oc.create:{_target_:subprocess.getoutput,cmd:touch PWNED}}'"


class TestWhatIsBuiltIsWhatWasChecked:
    @pytest.mark.parametrize(
        "overrides",
        [
            [f"+pipeline.named_losses.evil={ESCAPED}"],
            [f"pipeline.pipeline_stages.1.early_stopping_criterion.metric={ESCAPED}"],
            [f"+pipeline.pipeline_stages.0.early_stopping_criterion={ESCAPED}"],
            ["task=gym", f"task.expert={ESCAPED}"],
            ["task=gym", f"+task.env_kwargs.render_mode={ESCAPED}"],
        ],
    )
    def test_an_escaped_interpolation_is_refused(
        self, compose: Compose, prepare: Any, overrides: list[str]
    ) -> None:
        """An escaped ${...} turns into a live interpolation once the config is resolved, and
        building the node would resolve it again, after the checks: refused, naming its key."""
        cfg = prepare(compose(*overrides))
        message = refused(cfg)
        assert "still holds an interpolation after the config was resolved" in message
        assert "subprocess.getoutput" in message

    @pytest.mark.parametrize(
        "overrides",
        [
            [f"+pipeline.named_losses.evil={LIVE}"],
            ["task=gym", f"task.expert={LIVE}"],
            [f"+pipeline.pipeline_stages.0.early_stopping_criterion={LIVE}"],
        ],
    )
    def test_a_node_made_by_a_resolver_is_checked(
        self, compose: Compose, prepare: Any, overrides: list[str]
    ) -> None:
        """oc.create builds a _target_ node during resolution: the checks see it."""
        message = refused(prepare(compose(*overrides)))
        assert "names 'subprocess.getoutput'" in message

    def test_an_escaped_value_in_a_setting(self, compose: Compose, prepare: Any) -> None:
        """A top-level setting is read after the checks, which would resolve it again too."""
        cfg = prepare(compose(r"restart_from_weights='runs/\${oc.env:HOME}'"))
        assert refused(cfg).startswith("'restart_from_weights' still holds an interpolation")


class TestModuleImports:
    @pytest.mark.parametrize("env_id", ["evil_module:Env-v0", "os:Anything-v0"])
    def test_a_gymnasium_id_naming_a_module(
        self, compose: Compose, prepare: Any, env_id: str
    ) -> None:
        """task.env_id=<module>:<id> makes Gymnasium import the module: it must be allowed."""
        cfg = prepare(compose("task=gym", f"task.env_id={env_id}", "pipeline=ppo"))
        module = env_id.split(":")[0]
        message = refused(cfg)
        assert message.startswith(f"'task.env_id' makes Gymnasium import module '{module}'")
        check_config(cfg, AllowList.of([module]))

    def test_a_plain_gymnasium_id(self, compose: Compose, prepare: Any) -> None:
        check_config(prepare(compose("task=gym", "task.env_id=Acrobot-v1", "pipeline=ppo")))


class TestInstantiationKeys:
    @pytest.mark.parametrize(
        ("override", "key"),
        [
            ("+pipeline._partial_=true", "pipeline._partial_"),
            ("+task._partial_=true", "task._partial_"),
            (
                "+pipeline.pipeline_stages.1._args_=[[ppo_loss]]",
                "pipeline.pipeline_stages.1._args_",
            ),
            (
                "+pipeline.named_losses.ppo_loss._args_=[0.1]",
                "pipeline.named_losses.ppo_loss._args_",
            ),
            ("+pipeline._recursive_=false", "pipeline._recursive_"),
            ("+pipeline.optimizer_builder._partial_=true", "pipeline.optimizer_builder._partial_"),
        ],
    )
    def test_refused_on_the_package_objects(
        self, compose: Compose, prepare: Any, override: str, key: str
    ) -> None:
        """The package's objects are built whole: _partial_, _args_, _recursive_ would make
        them something else."""
        message = refused(prepare(compose(override)))
        assert message.startswith(f"'{key}' is set")

    @pytest.mark.parametrize(
        "override", ["+pipeline._partial_=false", "+task._recursive_=true", "+task._args_=[]"]
    )
    def test_their_defaults_are_harmless(
        self, compose: Compose, prepare: Any, override: str
    ) -> None:
        check_config(prepare(compose(override)))

    def test_user_targets_may_use_them(
        self, compose: Compose, prepare: Any, tiny_loss_module: str
    ) -> None:
        """A user's own target decides what it supports."""
        cfg = prepare(
            compose(
                f"+pipeline.named_losses.tiny={{_target_:{tiny_loss_module}.TinyLoss,_args_:[3.0]}}"
            )
        )
        with allowing(AllowList.of([tiny_loss_module])):
            check_config(cfg)
            assert instantiate_node(cfg, "pipeline").named_losses["tiny"].scale == 3.0


@pytest.fixture
def compose_with_hydra() -> Iterator[Compose]:
    """``compose_with_hydra(*overrides)``: the app's config with its ``hydra`` node, as Hydra
    has it when it builds its callbacks."""
    GlobalHydra.instance().clear()

    def _compose(*overrides: str) -> DictConfig:
        GlobalHydra.instance().clear()
        try:
            with hydra.initialize_config_module(
                version_base="1.3", config_module="hydra_pipeline.conf"
            ):
                cfg = hydra.compose("config", overrides=list(overrides), return_hydra_config=True)
        finally:
            GlobalHydra.instance().clear()
        return copy.deepcopy(cfg)

    yield _compose
    GlobalHydra.instance().clear()


class TestHydraCallbacks:
    def test_the_package_callback_and_hydras_own(self, compose_with_hydra: Compose) -> None:
        cfg = compose_with_hydra(
            "+hydra.callbacks.log_return._target_=hydra.experimental.callbacks.LogJobReturnCallback"
        )
        assert set(OmegaConf.select(cfg, "hydra.callbacks")) == {"sweep_summary", "log_return"}
        check_hydra_callbacks(cfg, AllowList())

    @pytest.mark.parametrize(
        ("callback", "allowed"),
        [
            ("{_target_:subprocess.getoutput,cmd:x}", []),
            ("{_target_:evil_module.Hook}", []),
            ("{_target_:hydra_pipeline.config.builder.get_object,path:os.system}", []),
            ("{_target_:hydra.utils.get_method,path:os.system}", []),
            # allowed user code, but not a Hydra callback
            ("{_target_:tests.config.conftest.TinyLoss}", ["tests"]),
            # an allowed callback whose argument builds something else
            (
                "{_target_:hydra.experimental.callbacks.LogJobReturnCallback,"
                "extra:{_target_:subprocess.getoutput,cmd:x}}",
                [],
            ),
        ],
    )
    def test_anything_else_is_refused(
        self, compose_with_hydra: Compose, callback: str, allowed: list[str]
    ) -> None:
        """hydra.callbacks are built by Hydra before any task runs: only installed Hydra
        callbacks may be named there, and their arguments pass the gate too."""
        cfg = compose_with_hydra(f"+hydra.callbacks.evil={callback}")
        with pytest.raises(ConfigError, match=r"^'hydra\.callbacks\.evil"):
            check_hydra_callbacks(cfg, AllowList.of(allowed))

    def test_an_escaped_interpolation_in_a_callback(self, compose_with_hydra: Compose) -> None:
        cfg = compose_with_hydra(
            "+hydra.callbacks.evil={_target_:hydra.experimental.callbacks.LogJobReturnCallback,"
            f"extra:{ESCAPED}}}"
        )
        with pytest.raises(ConfigError, match="still holds an interpolation"):
            check_hydra_callbacks(cfg, AllowList())


class TestHydraSettingsFromFiles:
    """The rules for what a config file from elsewhere sets under hydra.*, on loaded configs
    (``tests/app/test_trust_surface.py`` tries them through the command line)."""

    @pytest.mark.parametrize(
        ("key_or_group", "package", "sets"),
        [
            ("hydra.run.dir", None, True),
            ("hydra/launcher", None, True),
            ("+hydra.callbacks.x", None, True),
            ("schedule", "hydra.job_logging.handlers.file", True),
            ("callbacks", "hydra", True),
            ("callbacks", "_global_.hydra.launcher", True),
            ("callbacks", "_global_", False),
            ("pipeline.gamma", None, False),
            ("hydrant", "hydrant.x", False),
        ],
    )
    def test_what_reaches_hydra(self, key_or_group: str, package: str | None, sets: bool) -> None:
        assert sets_hydra(key_or_group, package) is sets

    @pytest.mark.parametrize(
        ("reference", "allowed"),
        [
            ("logging.StreamHandler", True),
            ("logging.handlers.RotatingFileHandler", True),
            ("logging.Formatter", True),
            ("ext://sys.stdout", True),
            ("logging.handlers.SocketHandler", False),  # sends the log elsewhere
            ("logging.handlers.QueueHandler", False),  # builds further objects
            ("logging.config.dictConfig", False),
            ("logging.os.system", False),
            ("ext://os.system", False),
            ("colorlog.ColoredFormatter", False),
        ],
    )
    def test_logging_callables(self, reference: str, allowed: bool) -> None:
        if allowed:
            AllowList().logging_callable("hydra.job_logging.x.class", reference)
        else:
            with pytest.raises(ConfigError, match=r"^'hydra\.job_logging\.x\.class' names"):
                AllowList().logging_callable("hydra.job_logging.x.class", reference)

    @pytest.mark.parametrize(
        ("entry", "allowed"),
        [
            ("file:///anywhere", True),
            ("pkg://hydra_pipeline.conf", True),
            ("pkg://hydra_plugins/hydra_colorlog/conf", True),
            ("pkg://os", False),
            ("structured://my_project.configs", False),
        ],
    )
    def test_search_path_entries(self, entry: str, allowed: bool) -> None:
        if allowed:
            AllowList().search_path_entry("hydra.searchpath", entry)
        else:
            with pytest.raises(ConfigError, match="makes Hydra import module"):
                AllowList().search_path_entry("hydra.searchpath", entry)
        AllowList.of(["my_project", "os"]).search_path_entry("hydra.searchpath", entry)

    @pytest.mark.parametrize(
        ("package", "text", "refused"),
        [
            ("", "hydra: {run: {dir: out}, job: {name: x, chdir: true}, verbose: true}", None),
            ("hydra.launcher", "{n_jobs: 2, pre_dispatch: 2*n_jobs}", None),
            ("", "hydra: {job: {env_set: {X: '1'}}}", "hydra.job.env_set.X"),
            ("", "hydra: {job: {name: ../x}}", "hydra.job.name"),
            ("hydra.launcher", "{ray: {init: {runtime_env: {pip: [x]}}}}", "runtime_env"),
            ("hydra.launcher", "{x: '${oc.create:{a: 1}}'}", "hydra.launcher.x"),
            ("hydra.launcher", "{x: {_target_: os.system}}", "hydra.launcher.x"),
            ("hydra.launcher", "{_target_: os.system}", "hydra.launcher._target_"),
            ("hydra.job_logging", "{handlers: {f: {filename: /x.log}}}", "filename"),
            ("", "hydra: {run: {dir: out}, job: {name: '${new_folder:x}'}}", "new_folder"),
        ],
    )
    def test_file_settings(self, package: str, text: str, refused: str | None) -> None:
        config = OmegaConf.create(text)
        if refused is None:
            check_file_settings("f.yaml", package, config, AllowList())
            return
        with pytest.raises(ConfigError) as caught:
            check_file_settings("f.yaml", package, config, AllowList())
        assert str(caught.value).startswith("Config file 'f.yaml': ")
        assert refused in str(caught.value)

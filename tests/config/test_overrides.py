"""Command-line overrides change exactly the keys they name, and nothing else.

Each override family of the issue is composed, resolved and compared leaf by leaf with the
default config: the set of changed leaves must lie under the keys the override names (plus the
keys derived from them by interpolation), and the built objects must carry the new values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, ListConfig, OmegaConf

from hydra_pipeline import LinearDecay
from hydra_pipeline.config import instantiate_node
from hydra_pipeline.engine.losses import A2C
from hydra_pipeline.models import MLPActorCritic
from hydra_pipeline.tasks import CartPoleTask

_ABSENT = object()


def leaves(node: Any, key: str = "") -> dict[str, Any]:
    """Every leaf of a resolved config by dotted key (list indices as ``.N``)."""
    if isinstance(node, DictConfig):
        items = [(str(k), node[k]) for k in node]
    elif isinstance(node, ListConfig):
        items = [(str(i), node[i]) for i in range(len(node))]
    else:
        return {key: node}
    found: dict[str, Any] = {}
    for child_key, child in items:
        found.update(leaves(child, f"{key}.{child_key}" if key else child_key))
    return found


def changed_keys(before: DictConfig, after: DictConfig) -> set[str]:
    """The dotted keys whose leaf differs (added, removed or changed) between two configs."""
    old, new = leaves(before), leaves(after)
    return {
        key
        for key in old.keys() | new.keys()
        if old.get(key, _ABSENT) != new.get(key, _ABSENT)
        or type(old.get(key)) is not type(new.get(key))
    }


def under(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith(f"{prefix}.")


class TestOverrideScope:
    @pytest.mark.parametrize(
        ("overrides", "expected"),
        [
            (["pipeline.gamma=0.95"], {"pipeline.gamma"}),
            (["pipeline.num_mini_batch=8"], {"pipeline.num_mini_batch"}),
            (
                ["pipeline.pipeline_stages.1.max_stage_steps=200000"],
                # the whole-run LR schedule follows the stages' total
                {
                    "pipeline.pipeline_stages.1.max_stage_steps",
                    "pipeline.lr_scheduler_builder.lr_lambda.steps",
                },
            ),
            (
                ["pipeline.pipeline_stages.0.max_stage_steps=1000"],
                # teacher forcing hands over by the end of the stage: its steps follow
                {
                    "pipeline.pipeline_stages.0.max_stage_steps",
                    "pipeline.pipeline_stages.0.teacher_forcing.steps",
                    "pipeline.lr_scheduler_builder.lr_lambda.steps",
                },
            ),
            (
                ["pipeline.pipeline_stages.0.teacher_forcing.steps=5000"],
                {"pipeline.pipeline_stages.0.teacher_forcing.steps"},
            ),
            (
                ["optimizer=sgd", "pipeline.optimizer_builder.lr=0.01"],
                {"pipeline.optimizer_builder"},
            ),
            (["lr_scheduler=cosine"], {"pipeline.lr_scheduler_builder"}),
            (["loss@pipeline.named_losses.ppo_loss=a2c"], {"pipeline.named_losses.ppo_loss"}),
            (["+loss@pipeline.named_losses.aux=a2c"], {"pipeline.named_losses.aux"}),
            (["task.num_envs=8"], {"task.num_envs"}),
            (["model.hidden_sizes=[32,32]"], {"model.hidden_sizes"}),
            (["model.activation=relu"], {"model.activation"}),
        ],
    )
    def test_override_changes_only_its_keys(
        self,
        compose: Callable[..., DictConfig],
        prepare: Callable[[DictConfig], DictConfig],
        overrides: list[str],
        expected: set[str],
    ) -> None:
        """The resolved config differs from the default only under the overridden keys."""
        default = prepare(compose())
        overridden = prepare(compose(*overrides))
        changed = changed_keys(default, overridden)
        assert changed, "the override changed nothing"
        outside = {key for key in changed if not any(under(key, p) for p in expected)}
        assert not outside, f"{overrides} also changed {sorted(outside)}"
        untouched = {p for p in expected if not any(under(key, p) for key in changed)}
        assert not untouched, f"{overrides} did not change {sorted(untouched)}"


class TestOverrideEffects:
    def test_gamma(self, build: Callable[..., Any]) -> None:
        """pipeline.gamma=0.95 sets TrainingPipeline.gamma."""
        assert build().gamma == 0.99
        assert build("pipeline.gamma=0.95").gamma == 0.95

    def test_num_mini_batch(self, build: Callable[..., Any]) -> None:
        """pipeline.num_mini_batch=8 sets TrainingPipeline.num_mini_batch."""
        assert build("pipeline.num_mini_batch=8").num_mini_batch == 8

    def test_stage_max_steps_and_schedule_length(self, build: Callable[..., Any]) -> None:
        """A stage's max_stage_steps changes it and the length of the whole-run LR schedule."""
        pipeline = build("pipeline.pipeline_stages.1.max_stage_steps=200000")
        assert [s.max_stage_steps for s in pipeline.pipeline_stages] == [32_768, 200_000]
        decay = pipeline.lr_scheduler_builder.kwargs["lr_lambda"]
        assert decay == LinearDecay(steps=32_768 + 200_000)

    def test_teacher_forcing_steps(self, build: Callable[..., Any]) -> None:
        """The teacher-forcing decay's steps change; the stage's own length does not."""
        stage = build("pipeline.pipeline_stages.0.teacher_forcing.steps=5000").pipeline_stages[0]
        assert stage.teacher_forcing == LinearDecay(steps=5000, startp=1.0, endp=0.0)
        assert stage.max_stage_steps == 32_768

    def test_sgd_with_learning_rate(self, build: Callable[..., Any]) -> None:
        """optimizer=sgd with an lr builds an SGD with that lr and the preset's momentum."""
        pipeline = build("optimizer=sgd", "pipeline.optimizer_builder.lr=0.01")
        opt = pipeline.optimizer_builder(params=torch.nn.Linear(2, 2).parameters())
        assert type(opt) is torch.optim.SGD
        assert opt.defaults["lr"] == 0.01
        assert opt.defaults["momentum"] == 0.9

    def test_learning_rate_alone(self, build: Callable[..., Any]) -> None:
        """pipeline.optimizer_builder.lr changes the optimizer's lr and nothing else."""
        default = build().optimizer_builder
        changed = build("pipeline.optimizer_builder.lr=0.01").optimizer_builder
        assert changed.kwargs == {**default.kwargs, "lr": 0.01}

    def test_cosine_scheduler(self, build: Callable[..., Any]) -> None:
        """lr_scheduler=cosine builds CosineAnnealingLR over the stages' total steps."""
        builder = build("lr_scheduler=cosine").lr_scheduler_builder
        opt = build().optimizer_builder(params=torch.nn.Linear(2, 2).parameters())
        scheduler = builder(optimizer=opt)
        assert type(scheduler) is torch.optim.lr_scheduler.CosineAnnealingLR
        assert (scheduler.T_max, scheduler.eta_min) == (332_768, 0.0)

    def test_replace_ppo_loss_with_a2c(self, build: Callable[..., Any]) -> None:
        """loss@pipeline.named_losses.ppo_loss=a2c makes ppo_loss an A2C, used by stage 1."""
        pipeline = build("loss@pipeline.named_losses.ppo_loss=a2c")
        loss = pipeline.named_losses["ppo_loss"]
        assert type(loss) is A2C
        assert (loss.value_loss_coef, loss.entropy_coef) == (0.5, 0.01)
        assert pipeline.pipeline_stages[1].loss_names == ["ppo_loss"]

    def test_add_an_a2c_loss(self, compose: Callable[..., DictConfig]) -> None:
        """+loss@pipeline.named_losses.aux=a2c adds an A2C node with the schema's values."""
        cfg = compose("+loss@pipeline.named_losses.aux=a2c")
        assert list(cfg.pipeline.named_losses) == ["imitation_loss", "ppo_loss", "aux"]
        assert OmegaConf.to_container(cfg.pipeline.named_losses.aux) == {
            "_target_": "hydra_pipeline.engine.losses.A2C",
            "value_loss_coef": 0.5,
            "entropy_coef": 0.01,
        }
        assert OmegaConf.get_type(cfg.pipeline.named_losses.aux).__name__ == "A2CConf"

    def test_num_envs(self, build: Callable[..., Any]) -> None:
        """task.num_envs=8 builds a CartPoleTask with 8 environments."""
        task = build("task.num_envs=8", key="task")
        assert type(task) is CartPoleTask
        assert task.num_envs == 8

    @pytest.mark.parametrize(
        ("overrides", "widths", "activation"),
        [
            ([], [64, 64], torch.nn.Tanh),
            (["model.hidden_sizes=[32,32]"], [32, 32], torch.nn.Tanh),
            (["model.activation=relu"], [64, 64], torch.nn.ReLU),
        ],
    )
    def test_model_overrides(
        self,
        compose: Callable[..., DictConfig],
        prepare: Callable[[DictConfig], DictConfig],
        overrides: list[str],
        widths: list[int],
        activation: type[torch.nn.Module],
    ) -> None:
        """hidden_sizes and activation change the layers of both MLPs."""
        cfg = prepare(compose(*overrides))
        task = instantiate_node(cfg, "task")
        model = instantiate_node(
            cfg, "model", observation_shape=task.observation_shape, action_space=task.action_space
        )
        assert type(model) is MLPActorCritic
        for mlp in (model.actor, model.critic):
            linears = [m for m in mlp if isinstance(m, torch.nn.Linear)]
            assert [m.out_features for m in linears[:-1]] == widths
            activations = [m for m in mlp if not isinstance(m, torch.nn.Linear)]
            assert [type(m) for m in activations] == [activation] * len(widths)


class TestOverrideTypes:
    @pytest.mark.parametrize(
        "override",
        [
            "pipeline.gamma=abc",
            "pipeline.num_mini_batch=1.5",
            "pipeline.use_gae=maybe",
            "pipeline.pipeline_stages.1.max_stage_steps=lots",
            "pipeline.pipeline_stages.1.training_settings.num_mini_batch=abc",
            "pipeline.optimizer_builder.lr=fast",
            "pipeline.named_losses.ppo_loss.clip_param=wide",
            "task.num_envs=many",
            "model.hidden_sizes=abc",
        ],
    )
    def test_wrong_type_is_rejected_when_composing(
        self, compose: Callable[..., DictConfig], override: str
    ) -> None:
        """Hydra refuses a value of the wrong type for a typed field at override time."""
        with pytest.raises(ConfigCompositionException, match="override") as caught:
            compose(override)
        key = override.split("=", 1)[0]
        assert key in str(caught.value) + str(caught.value.__cause__)

    def test_unknown_key_is_rejected_when_composing(
        self, compose: Callable[..., DictConfig]
    ) -> None:
        """A typo in a typed node fails at composition, naming the key."""
        with pytest.raises(ConfigCompositionException, match=r"pipeline\.gama"):
            compose("pipeline.gama=0.9")

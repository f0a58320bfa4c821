"""MLPActorCritic: output shapes, distributions per action space, parameters, validation."""

from __future__ import annotations

from typing import Any

import hydra.utils
import pytest
import torch
from omegaconf import OmegaConf

from hydra_pipeline import InvalidArgumentError
from hydra_pipeline.config import MLPActorCriticConf
from hydra_pipeline.models import ACTIVATIONS, Categorical, DiagonalGaussian, MLPActorCritic
from hydra_pipeline.tasks import ContinuousActions, DiscreteActions
from hydra_pipeline.tasks.observations import TensorSpace


def continuous(shape: tuple[int, ...]) -> ContinuousActions:
    size = 1
    for dimension in shape:
        size *= dimension
    return ContinuousActions(shape, (-1.0,) * size, (1.0,) * size)


class TestDiscrete:
    def test_shapes(self) -> None:
        """Discrete actions: a categorical over n actions and one value per observation."""
        model = MLPActorCritic((4,), DiscreteActions(3), hidden_sizes=(8, 8))
        output = model(torch.randn(5, 4))
        assert isinstance(output.distribution, Categorical)
        assert output.distribution.logits.shape == (5, 3)
        assert output.values.shape == (5,)
        assert output.distribution.sample().shape == (5,)
        assert output.distribution.log_prob(torch.zeros(5, dtype=torch.int64)).shape == (5,)

    def test_no_log_std(self) -> None:
        """The log_std parameter exists only for continuous actions."""
        model = MLPActorCritic((4,), DiscreteActions(2), hidden_sizes=(8,))
        assert model.log_std is None
        assert not any("log_std" in name for name, _ in model.named_parameters())

    def test_observations_are_flattened(self) -> None:
        """Multi-dimensional observations are flattened before the first layer."""
        model = MLPActorCritic((2, 3, 2), DiscreteActions(4), hidden_sizes=(8,))
        first = model.actor[0]
        assert isinstance(first, torch.nn.Linear) and first.in_features == 12
        output = model(torch.randn(7, 2, 3, 2))
        assert output.distribution.logits.shape == (7, 4)
        assert output.values.shape == (7,)

    def test_no_hidden_layer(self) -> None:
        """An empty hidden_sizes gives linear actor and critic heads."""
        model = MLPActorCritic((4,), DiscreteActions(2), hidden_sizes=())
        assert len(model.actor) == 1 and len(model.critic) == 1
        assert model(torch.randn(3, 4)).values.shape == (3,)

    def test_actor_head_is_near_uniform(self) -> None:
        """The actor head's small initial gain makes the initial policy nearly uniform."""
        torch.manual_seed(0)
        model = MLPActorCritic((4,), DiscreteActions(2))
        entropy = model(torch.randn(100, 4)).distribution.entropy().detach()
        assert float(entropy.min()) > 0.69  # ln 2 = 0.6931


class TestContinuous:
    @pytest.mark.parametrize("shape", [(1,), (3,), (2, 3)])
    def test_shapes(self, shape: tuple[int, ...]) -> None:
        """Continuous actions: a Gaussian whose mean has the action shape, values (batch,)."""
        model = MLPActorCritic((4,), continuous(shape), hidden_sizes=(8,), initial_log_std=-0.5)
        output = model(torch.randn(6, 4))
        assert isinstance(output.distribution, DiagonalGaussian)
        assert output.distribution.mean.shape == (6, *shape)
        assert output.distribution.sample().shape == (6, *shape)
        assert output.distribution.log_prob(torch.zeros(6, *shape)).shape == (6,)
        assert output.values.shape == (6,)

    def test_log_std_parameter(self) -> None:
        """log_std is a trainable parameter of the action shape, set to initial_log_std."""
        model = MLPActorCritic((4,), continuous((2, 3)), hidden_sizes=(8,), initial_log_std=-0.5)
        assert isinstance(model.log_std, torch.nn.Parameter)
        assert model.log_std.shape == (2, 3)
        assert torch.equal(model.log_std.data, torch.full((2, 3), -0.5))
        assert dict(model.named_parameters())["log_std"] is model.log_std
        entropy = model(torch.randn(2, 4)).distribution.entropy()
        # Six entries, each 0.5 + 0.5 ln(2 pi) - 0.5.
        expected = 6 * 0.5 * torch.log(torch.tensor(2 * torch.pi))
        torch.testing.assert_close(entropy, expected.expand(2))


class TestValidation:
    def test_unknown_activation(self) -> None:
        """An unknown activation is refused with the list of known ones."""
        with pytest.raises(
            InvalidArgumentError,
            match=r"'activation' must be one of \['elu', 'gelu', 'relu', 'silu', 'tanh'\] "
            r"\(got 'sigmoid'\)",
        ):
            MLPActorCritic((4,), DiscreteActions(2), activation="sigmoid")

    @pytest.mark.parametrize("name", sorted(ACTIVATIONS))
    def test_every_activation_builds(self, name: str) -> None:
        """Each listed activation builds and sits between the layers."""
        model = MLPActorCritic((4,), DiscreteActions(2), hidden_sizes=(8,), activation=name)
        assert isinstance(model.actor[1], ACTIVATIONS[name])
        assert isinstance(model.critic[1], ACTIVATIONS[name])

    def test_hidden_size_must_be_positive(self) -> None:
        """A hidden layer of width 0 is refused with its index."""
        with pytest.raises(InvalidArgumentError, match=r"'hidden_sizes.1' must be >= 1 \(got 0\)"):
            MLPActorCritic((4,), DiscreteActions(2), hidden_sizes=(8, 0))


class TestArchitecture:
    def test_separate_sizes_and_a_shared_trunk(self) -> None:
        """The actor and the critic have their own hidden sizes, behind optional shared
        layers that both see."""
        model = MLPActorCritic(
            (4,),
            DiscreteActions(2),
            actor_hidden_sizes=[32],
            critic_hidden_sizes=[16, 8],
            shared_hidden_sizes=[64],
        )
        widths = lambda net: [m.out_features for m in net if isinstance(m, torch.nn.Linear)]  # noqa: E731
        assert model.trunk is not None and widths(model.trunk) == [64]
        assert widths(model.actor) == [32, 2] and widths(model.critic) == [16, 8, 1]
        output = model(torch.randn(5, 4))
        assert output.values.shape == (5,) and output.distribution.sample().shape == (5,)
        plain = MLPActorCritic((4,), DiscreteActions(2), hidden_sizes=[8])
        assert plain.trunk is None and widths(plain.actor) == [8, 2]

    def test_orthogonal_gains_or_torch_defaults(self) -> None:
        """Orthogonal weights scaled by each layer's gain and zero biases, or, with
        orthogonal_init off, torch's own initialisation (non-zero biases)."""
        torch.manual_seed(0)
        model = MLPActorCritic(
            (6,), DiscreteActions(3), hidden_sizes=[6], actor_gain=0.5, hidden_gain=2.0
        )
        hidden = model.actor[0].weight
        assert torch.allclose(hidden @ hidden.T, 4.0 * torch.eye(6), atol=1e-5)
        head = model.actor[2].weight
        assert torch.allclose(head @ head.T, 0.25 * torch.eye(3), atol=1e-5)
        assert not model.actor[0].bias.any()
        default = MLPActorCritic((6,), DiscreteActions(3), hidden_sizes=[6], orthogonal_init=False)
        assert default.actor[0].bias.abs().sum() > 0

    @pytest.mark.parametrize(
        ("arguments", "argument"),
        [
            ({"actor_hidden_sizes": [0]}, "actor_hidden_sizes.0"),
            ({"shared_hidden_sizes": [4, -1]}, "shared_hidden_sizes.1"),
            ({"critic_gain": 0.0}, "critic_gain"),
        ],
    )
    def test_arguments_are_checked(self, arguments: dict[str, Any], argument: str) -> None:
        with pytest.raises(InvalidArgumentError) as caught:
            MLPActorCritic((4,), DiscreteActions(2), **arguments)
        assert caught.value.argument == argument


class TestInstantiate:
    """The route a Hydra user tries first: hydra.utils.instantiate(cfg.model, ...) with a
    task's action space, which Hydra hands over as a config node."""

    @pytest.mark.parametrize(
        ("action_space", "logits", "continuous"),
        [
            (DiscreteActions(3), 3, False),
            (ContinuousActions((2,), (-1.0, -1.0), (1.0, 1.0)), 2, True),
        ],
    )
    def test_the_task_action_space_builds_the_right_head(
        self, action_space: Any, logits: int, continuous: bool
    ) -> None:
        cfg = OmegaConf.structured(MLPActorCriticConf)
        model = hydra.utils.instantiate(cfg, observation_shape=(4,), action_space=action_space)
        assert model.actor[-1].out_features == logits
        assert (model.log_std is not None) is continuous

    def test_something_else_points_to_policy_from_run(self) -> None:
        cfg = OmegaConf.structured(MLPActorCriticConf)
        with pytest.raises(Exception, match=r"Policy\.from_run"):
            hydra.utils.instantiate(cfg, observation_shape=(4,), action_space={"size": 3})


MEMBER_MODELS: dict[str, dict[str, Any]] = {
    "discrete": {"action_space": DiscreteActions(3)},
    "gaussian": {"action_space": continuous((2, 2))},
    "gsde, shared trunk": {
        "action_space": continuous((2,)),
        "shared_hidden_sizes": (8,),
        "use_sde": True,
        "full_std": False,
    },
}


@pytest.mark.parametrize("kind", list(MEMBER_MODELS))
def test_members_run_in_one_forward_as_each_alone(kind: str) -> None:
    """Three members' copies (their own weights) run as one stacked forward: each member's
    rows of the distribution and values are its own model's (to float32 rounding: a batched
    product may round differently), and its gradients too."""
    models = [MLPActorCritic((3, 2), hidden_sizes=(8, 8), **MEMBER_MODELS[kind]) for _ in range(3)]
    for model in models:  # distinct members, log standard deviations included
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter) * 0.1)
    names = [name for name, _ in models[0].named_parameters()]
    stacked = {
        name: torch.stack([dict(m.named_parameters())[name] for m in models]).detach()
        for name in names
    }
    for value in stacked.values():
        value.requires_grad_()
    observations = torch.randn(3, 5, 3, 2)
    assert models[0].stacks_members
    together = models[0].forward_members(stacked, observations)
    actions = together.distribution.sample().detach()
    assert actions.shape[:2] == (3, 5)
    (together.distribution.log_prob(actions).sum() + together.values.sum()).backward()
    for member, model in enumerate(models):
        own = model(observations[member])
        for attribute, value in vars(own.distribution).items():
            if isinstance(value, torch.Tensor):
                mine = getattr(together.distribution, attribute)[member]
                torch.testing.assert_close(mine, value, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(together.values[member], own.values, rtol=1e-5, atol=1e-6)
        (own.distribution.log_prob(actions[member]).sum() + own.values.sum()).backward()
        for name, parameter in model.named_parameters():
            assert parameter.grad is not None, name
            gradient = stacked[name].grad
            assert gradient is not None, name
            torch.testing.assert_close(gradient[member], parameter.grad, rtol=1e-4, atol=1e-6)


def test_models_with_parameters_in_their_encoder_do_not_stack() -> None:
    """Image observations go through convolutions, which the stacked forward does not run:
    such a model says so (the seeds' batch then runs it under vmap)."""
    space = TensorSpace((7, 7, 3), "uint8")
    model = MLPActorCritic((7, 7, 3), DiscreteActions(3), observation_space=space)
    assert not model.stacks_members
    assert MLPActorCritic((4,), DiscreteActions(3)).stacks_members

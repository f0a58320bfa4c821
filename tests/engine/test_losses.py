"""PPO, A2C and Imitation on tiny hand-computed batches; Minibatch.require; validation."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from hydra_pipeline import InvalidArgumentError, LinearDecay
from hydra_pipeline.engine import A2C, PPO, A2CConfig, Imitation, Minibatch, PPOConfig
from hydra_pipeline.models import ActorCriticOutput, Categorical, DiagonalGaussian

LN = math.log
# Entropy of (0.75, 0.25).
H_QUARTER = -(0.75 * LN(0.75) + 0.25 * LN(0.25))

# Three samples over two actions.
#   s0: logits (0, 0)     -> p = (0.5, 0.5);   action 0, new log p = ln 0.5,  ratio 1.5
#   s1: logits (ln 3, 0)  -> p = (0.75, 0.25); action 1, new log p = ln 0.25, ratio 0.95
#   s2: logits (0, ln 3)  -> p = (0.25, 0.75); action 0, new log p = ln 0.25, ratio 0.5
LOGITS = [[0.0, 0.0], [LN(3.0), 0.0], [0.0, LN(3.0)]]
ACTIONS = [0, 1, 0]
OLD_LOG_PROBS = [LN(0.5) - LN(1.5), LN(0.25) - LN(0.95), LN(0.25) - LN(0.5)]
NORMALIZED_ADVANTAGES = [2.0, -1.0, -1.0]
ADVANTAGES = [1.0, 3.0, 2.0]
VALUES = [1.0, 2.0, 0.0]
OLD_VALUES = [0.5, 2.5, 0.0]
RETURNS = [2.0, 2.2, 1.0]
EXPERT_ACTIONS = [1, 0, 1]
MEAN_ENTROPY = (LN(2.0) + 2 * H_QUARTER) / 3


def tensor(values: list[Any], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


def batch(**overrides: Any) -> Minibatch:
    fields: dict[str, Any] = {
        "observations": torch.zeros(3, 4),
        "actions": tensor(ACTIONS, torch.int64),
        "old_log_probs": tensor(OLD_LOG_PROBS),
        "old_values": tensor(OLD_VALUES),
        "returns": tensor(RETURNS),
        "advantages": tensor(ADVANTAGES),
        "normalized_advantages": tensor(NORMALIZED_ADVANTAGES),
        "expert_actions": tensor(EXPERT_ACTIONS, torch.int64),
    }
    fields.update(overrides)
    return Minibatch(**fields)


def output(logits: torch.Tensor | None = None, values: torch.Tensor | None = None) -> Any:
    return ActorCriticOutput(
        Categorical(tensor(LOGITS) if logits is None else logits),
        tensor(VALUES) if values is None else values,
    )


def approx(value: float) -> Any:
    return pytest.approx(value, rel=1e-5, abs=1e-6)


class TestPPO:
    def test_terms_by_hand(self) -> None:
        """Clipped surrogate, clipped value loss and entropy match the hand computation."""
        # Surrogates (clip 0.2): s0 min(1.5*2, 1.2*2) = 2.4; s1 min(-0.95, -0.95) = -0.95;
        # s2 min(0.5*-1, 0.8*-1) = -0.8. Action loss = -(2.4 - 0.95 - 0.8) / 3.
        # Values: s0 max((1-2)^2, (0.7-2)^2) = 1.69; s1 max((2-2.2)^2, (2.3-2.2)^2) = 0.04;
        # s2 max(1, 1) = 1. Value loss = 0.5 * (1.69 + 0.04 + 1) / 3 = 0.455.
        loss = PPO(clip_param=0.2, value_loss_coef=0.5, entropy_coef=0.01)
        total, info = loss(step_count=0, batch=batch(), output=output())
        action = -(2.4 - 0.95 - 0.8) / 3
        assert info["action"] == approx(action)
        assert info["value"] == approx(0.455)
        assert info["entropy"] == approx(MEAN_ENTROPY)
        assert info["clip_fraction"] == approx(2 / 3)  # s0 and s2 lie outside [0.8, 1.2]
        assert total.item() == approx(action + 0.5 * 0.455 - 0.01 * MEAN_ENTROPY)
        # approx KL: mean((r - 1) - ln r) over the ratios 1.5, 0.95, 0.5.
        ratios = [1.5, 0.95, 0.5]
        assert info["approx_kl"] == approx(sum(r - 1 - LN(r) for r in ratios) / 3)
        assert set(info) == {"action", "value", "entropy", "clip_fraction", "approx_kl"}
        assert set(info) == set(loss.terms)

    def test_unclipped_value_loss(self) -> None:
        """Without value clipping the value loss is half the mean squared error."""
        loss = PPO(clip_param=0.2, use_clipped_value_loss=False)
        _, info = loss(step_count=0, batch=batch(), output=output())
        assert info["value"] == approx(0.5 * (1.0 + 0.04 + 1.0) / 3)

    def test_raw_advantages_without_normalization(self) -> None:
        """normalize_advantage=False reads ``advantages``, not ``normalized_advantages``."""
        # s0 min(1.5*1, 1.2*1) = 1.2; s1 min(0.95*3, 0.95*3) = 2.85; s2 min(0.5*2, 0.8*2) = 1.0.
        loss = PPO(clip_param=0.2, normalize_advantage=False)
        _, info = loss(step_count=0, batch=batch(), output=output())
        assert info["action"] == approx(-(1.2 + 2.85 + 1.0) / 3)
        # The other field is not even needed.
        _, same = loss(step_count=0, batch=batch(normalized_advantages=None), output=output())
        assert same["action"] == info["action"]
        with pytest.raises(ValueError, match=r"\['advantages'\]"):
            loss(step_count=0, batch=batch(advantages=None), output=output())

    def test_normalized_advantages_by_default(self) -> None:
        """By default PPO needs and uses ``normalized_advantages``."""
        with pytest.raises(ValueError, match=r"\['normalized_advantages'\]"):
            PPO()(step_count=0, batch=batch(normalized_advantages=None), output=output())

    def test_clip_decay_runs_on_step_count(self) -> None:
        """clip_decay(step_count) multiplies clip_param, in the surrogate and the value clip."""
        # LinearDecay(100) at step 50 is 0.5, so the clip is 0.2 * 0.5 = 0.1:
        # s0 min(3.0, 1.1*2) = 2.2; s1 (0.95 inside [0.9, 1.1]) -0.95; s2 min(-0.5, -0.9) = -0.9.
        # Values: s0 clipped 0.6 -> 1.96; s1 max(0.04, (2.4-2.2)^2) = 0.04; s2 1.
        loss = PPO(clip_param=0.2, clip_decay=LinearDecay(steps=100))
        _, info = loss(step_count=50, batch=batch(), output=output())
        assert info["action"] == approx(-(2.2 - 0.95 - 0.9) / 3)
        assert info["value"] == approx(0.5 * (1.96 + 0.04 + 1.0) / 3)
        assert info["clip_fraction"] == approx(2 / 3)
        # At step 0 the decay is 1: the undecayed numbers.
        _, start = loss(step_count=0, batch=batch(), output=output())
        assert start["action"] == approx(-(2.4 - 0.95 - 0.8) / 3)

    def test_clipped_sample_has_no_policy_gradient(self) -> None:
        """A sample whose ratio is clipped on the advantage's side gets no policy gradient."""
        logits = tensor(LOGITS).requires_grad_()
        loss = PPO(clip_param=0.2, value_loss_coef=0.0, entropy_coef=0.0)
        total, _ = loss(step_count=0, batch=batch(), output=output(logits=logits))
        total.backward()  # type: ignore[no-untyped-call]
        assert logits.grad is not None
        assert torch.equal(logits.grad[0], torch.zeros(2))  # ratio 1.5 > 1.2 with A > 0
        assert torch.equal(logits.grad[2], torch.zeros(2))  # ratio 0.5 < 0.8 with A < 0
        # s1 is inside the range: d(-r*A/3)/dlogits with r = 0.95, A = -1 and
        # d log p(1) / d logits = onehot(1) - p = (-0.75, 0.75).
        expected = tensor([-0.75, 0.75]) * (0.95 * 1.0 / 3)
        torch.testing.assert_close(logits.grad[1], expected)

    def test_show_ratios_logs_allenacts_ratio_terms(self) -> None:
        """show_ratios adds the mean ratio, its clamp and the one the surrogate used; the loss
        itself does not change."""
        # Ratios (1.5, 0.95, 0.5); clamped to [0.8, 1.2]: (1.2, 0.95, 0.8). The surrogate used
        # the clamped value where it was smaller (s0: 2.4 < 3.0; s2: -0.8 < -0.5): (1.2, 0.95,
        # 0.8).
        plain, _ = PPO(clip_param=0.2)(step_count=0, batch=batch(), output=output())
        total, info = PPO(clip_param=0.2, show_ratios=True)(
            step_count=0, batch=batch(), output=output()
        )
        assert total.item() == plain.item()
        assert info["ratio"] == approx((1.5 + 0.95 + 0.5) / 3)
        assert info["ratio_clamped"] == approx((1.2 + 0.95 + 0.8) / 3)
        assert info["ratio_used"] == approx((1.2 + 0.95 + 0.8) / 3)
        # With raw advantages s2 has A > 0, so its unclamped 0.5 (0.5*2 < 0.8*2) is used.
        _, raw = PPO(clip_param=0.2, show_ratios=True, normalize_advantage=False)(
            step_count=0, batch=batch(), output=output()
        )
        assert raw["ratio_used"] == approx((1.2 + 0.95 + 0.5) / 3)

    def test_entropy_method_name_picks_the_distribution_method(self) -> None:
        """entropy_method_name names the method giving the entropy bonus (AllenAct's
        conditional_entropy for its sequential distributions)."""

        class Conditional(Categorical):
            def conditional_entropy(self) -> torch.Tensor:
                return torch.full((3,), 2.0)

        out = ActorCriticOutput(Conditional(tensor(LOGITS)), tensor(VALUES))
        _, default = PPO()(step_count=0, batch=batch(), output=out)
        assert default["entropy"] == approx(MEAN_ENTROPY)
        _, named = PPO(entropy_method_name="conditional_entropy")(
            step_count=0, batch=batch(), output=out
        )
        assert named["entropy"] == approx(2.0)

    def test_unknown_entropy_method_is_explained(self) -> None:
        loss = PPO(entropy_method_name="conditional_entropy")
        with pytest.raises(
            ValueError,
            match=r"'conditional_entropy', but the model's action distribution "
            r"\(Categorical\) has no such method; use 'entropy'",
        ):
            loss(step_count=0, batch=batch(), output=output())

    def test_allenact_config_defaults(self) -> None:
        """PPO(**PPOConfig) and A2C(**A2CConfig) are AllenAct's defaults, which are also the
        constructors' own."""
        assert PPOConfig == {"clip_param": 0.1, "value_loss_coef": 0.5, "entropy_coef": 0.01}
        assert A2CConfig == {"value_loss_coef": 0.5, "entropy_coef": 0.01}
        assert vars(PPO(**PPOConfig)) == vars(PPO())
        assert vars(A2C(**A2CConfig)) == vars(A2C())

    def test_continuous_actions(self) -> None:
        """With a diagonal Gaussian, the ratio comes from the summed per-entry log densities."""
        mean = torch.zeros(2, 2)
        log_std = torch.zeros(2)
        actions = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
        # log N(1; 0, 1) + log N(0; 0, 1) = -0.5 - ln(2 pi); old log probs chosen for ratios 1, 2.
        new_log_probs = [-0.5 - LN(2 * math.pi), -LN(2 * math.pi)]
        old = tensor([new_log_probs[0], new_log_probs[1] - LN(2.0)])
        minibatch = batch(
            observations=torch.zeros(2, 3),
            actions=actions,
            old_log_probs=old,
            old_values=torch.zeros(2),
            returns=torch.zeros(2),
            normalized_advantages=tensor([1.0, 1.0]),
        )
        loss = PPO(clip_param=0.2, value_loss_coef=0.0, entropy_coef=0.0)
        out = ActorCriticOutput(DiagonalGaussian(mean, log_std), torch.zeros(2))
        total, info = loss(step_count=0, batch=minibatch, output=out)
        assert info["action"] == approx(-(1.0 + 1.2) / 2)
        assert info["entropy"] == approx(2 * (0.5 + 0.5 * LN(2 * math.pi)))
        assert total.item() == approx(-(1.0 + 1.2) / 2)


class TestPPODetails:
    def test_advantages_normalised_per_minibatch(self) -> None:
        """advantage_normalization=minibatch normalises the raw advantages of the minibatch
        itself (SB3, CleanRL) instead of reading the rollout-wide normalised ones."""
        raw = torch.tensor(ADVANTAGES)
        own = ((raw - raw.mean()) / (raw.std() + 1e-5)).tolist()
        per_minibatch = PPO(clip_param=0.2, advantage_normalization="minibatch")
        precomputed = PPO(clip_param=0.2)
        _, expected = precomputed(
            step_count=0, batch=batch(normalized_advantages=tensor(own)), output=output()
        )
        _, info = per_minibatch(step_count=0, batch=batch(), output=output())
        assert info["action"] == approx(expected["action"])

    def test_target_kl_stops_the_update(self) -> None:
        """stops_update answers whether the minibatch's approximate KL is past 1.5 x
        target_kl; without target_kl it never stops."""
        _, info = PPO(clip_param=0.2)(step_count=0, batch=batch(), output=output())
        kl = info["approx_kl"]
        assert PPO(target_kl=kl / 1.5 * 0.99).stops_update(info)
        assert not PPO(target_kl=kl / 1.5 * 1.01).stops_update(info)
        assert not PPO().stops_update(info)

    def test_zero_entropy_coef_builds_no_entropy_graph(self) -> None:
        """Without an entropy bonus, the entropy is logged but kept out of the graph: the loss
        and every gradient are those of the objective with ``0 * entropy`` subtracted, and
        the entropy's own graph is never built (its parameters get no gradient from it)."""
        logits = tensor(LOGITS).requires_grad_()
        std = torch.zeros(()).requires_grad_()  # reaches the loss through the entropy only
        entropy_calls = []

        class Counted(Categorical):
            def entropy(self) -> torch.Tensor:
                entropy_calls.append(torch.is_grad_enabled())
                return super().entropy() + std

        out = ActorCriticOutput(Counted(logits), tensor(VALUES))
        total, info = PPO(clip_param=0.2, entropy_coef=0.0)(step_count=0, batch=batch(), output=out)
        total.backward()  # type: ignore[no-untyped-call]
        assert entropy_calls == [False]
        assert std.grad is None
        assert info["entropy"] == approx(MEAN_ENTROPY)

        reference_logits = tensor(LOGITS).requires_grad_()
        reference_out = output(reference_logits)
        reference, _ = PPO(clip_param=0.2, entropy_coef=1.0)(
            step_count=0, batch=batch(), output=reference_out
        )
        entropy = reference_out.distribution.entropy().mean()
        # The loss with weight 1 and its entropy term added back: weight 0, built in full.
        weight_zero = reference + entropy - 0.0 * entropy
        weight_zero.backward()  # type: ignore[no-untyped-call]
        torch.testing.assert_close(total.detach(), weight_zero.detach())
        torch.testing.assert_close(logits.grad, reference_logits.grad)

    def test_show_ratios_adds_terms(self) -> None:
        loss = PPO(show_ratios=True)
        _, info = loss(step_count=0, batch=batch(), output=output())
        assert set(info) == set(loss.terms) >= {"ratio", "ratio_clamped", "ratio_used"}

    @pytest.mark.parametrize(
        ("arguments", "argument"),
        [
            ({"advantage_normalization": "episode"}, "advantage_normalization"),
            ({"target_kl": 0.0}, "target_kl"),
            ({"target_kl": math.nan}, "target_kl"),
        ],
    )
    def test_arguments_are_checked(self, arguments: dict[str, Any], argument: str) -> None:
        with pytest.raises(InvalidArgumentError) as caught:
            PPO(**arguments)
        assert caught.value.argument == argument


class TestA2C:
    def test_terms_by_hand(self) -> None:
        """Policy gradient with raw advantages, half-MSE value loss and entropy."""
        loss = A2C(value_loss_coef=0.5, entropy_coef=0.01)
        total, info = loss(step_count=0, batch=batch(), output=output())
        # -(1 * ln 0.5 + 3 * ln 0.25 + 2 * ln 0.25) / 3; the normalized advantages are unused.
        action = -(1.0 * LN(0.5) + 3.0 * LN(0.25) + 2.0 * LN(0.25)) / 3
        value = 0.5 * ((1 - 2) ** 2 + (2 - 2.2) ** 2 + (0 - 1) ** 2) / 3
        assert info == {
            "action": approx(action),
            "value": approx(value),
            "entropy": approx(MEAN_ENTROPY),
        }
        assert total.item() == approx(action + 0.5 * value - 0.01 * MEAN_ENTROPY)

    def test_needs_no_old_policy(self) -> None:
        """A2C needs only actions, returns and advantages."""
        minibatch = batch(old_log_probs=None, old_values=None, normalized_advantages=None)
        A2C()(step_count=0, batch=minibatch, output=output())
        with pytest.raises(ValueError, match=r"\['returns', 'advantages'\]"):
            A2C()(step_count=0, batch=batch(returns=None, advantages=None), output=output())


class TestImitation:
    def test_cross_entropy_by_hand(self) -> None:
        """Imitation is the mean negative log-likelihood of the expert's actions."""
        total, info = Imitation()(step_count=0, batch=batch(), output=output())
        expected = -(LN(0.5) + LN(0.75) + LN(0.75)) / 3
        assert total.item() == approx(expected)
        assert info == {"cross_entropy": approx(expected)}

    def test_off_policy_batch(self) -> None:
        """It works on a batch carrying only observations and expert actions."""
        minibatch = Minibatch(torch.zeros(3, 4), expert_actions=tensor(EXPERT_ACTIONS, torch.int64))
        total, _ = Imitation()(step_count=0, batch=minibatch, output=output())
        assert total.item() == approx(-(LN(0.5) + 2 * LN(0.75)) / 3)

    def test_gaussian_expert(self) -> None:
        """For continuous actions it is the negative Gaussian log density of the expert's."""
        minibatch = Minibatch(torch.zeros(1, 3), expert_actions=torch.tensor([[1.0, 3.0]]))
        distribution = DiagonalGaussian(torch.tensor([[0.0, 1.0]]), torch.log(tensor([1.0, 2.0])))
        total, _ = Imitation()(
            step_count=0, batch=minibatch, output=ActorCriticOutput(distribution, torch.zeros(1))
        )
        # z = (1, 1): 0.5 + 0.5 + ln 1 + ln 2 + ln(2 pi).
        assert total.item() == approx(1.0 + LN(2.0) + LN(2 * math.pi))

    def test_expert_sensor_is_kept_and_not_needed(self) -> None:
        """AllenAct's expert-sensor argument (positional, as its configs pass it) is kept; the
        loss is the same, reading the batch's expert actions."""
        sensor = object()
        loss = Imitation(sensor)
        assert loss.expert_sensor is sensor and Imitation().expert_sensor is None
        with_sensor, _ = loss(step_count=0, batch=batch(), output=output())
        without, _ = Imitation()(step_count=0, batch=batch(), output=output())
        assert with_sensor.item() == without.item()

    def test_expert_flag(self) -> None:
        """Only Imitation asks the engine to record expert actions."""
        assert Imitation.needs_expert_actions is True
        assert Imitation().needs_expert_actions is True
        assert PPO().needs_expert_actions is False
        assert A2C().needs_expert_actions is False


class TestMinibatchRequire:
    def test_returns_fields_in_order(self) -> None:
        """require gives the named fields in the order asked."""
        minibatch = batch()
        returns, actions = minibatch.require("returns", "actions")
        assert returns is minibatch.returns and actions is minibatch.actions

    def test_names_missing_fields(self) -> None:
        """The error lists exactly the missing fields and explains what off-policy batches hold."""
        minibatch = Minibatch(torch.zeros(2, 4), expert_actions=torch.zeros(2, dtype=torch.int64))
        with pytest.raises(ValueError) as error:
            PPO()(step_count=0, batch=minibatch, output=output())
        message = str(error.value)
        assert (
            "this loss needs ['actions', 'old_log_probs', 'old_values', 'returns', "
            "'normalized_advantages']" in message
        )
        assert "off-policy batches carry only observations and expert_actions" in message

    def test_missing_expert_actions(self) -> None:
        """An on-policy batch without expert actions cannot feed Imitation."""
        with pytest.raises(ValueError, match=r"needs \['expert_actions'\].*need a task with an"):
            Imitation()(step_count=0, batch=batch(expert_actions=None), output=output())


class TestValidation:
    @pytest.mark.parametrize(
        ("factory", "message"),
        [
            (lambda: PPO(clip_param=0.0), r"'clip_param' must be > 0 \(got 0.0\)"),
            (lambda: PPO(clip_param=-0.1), r"'clip_param' must be > 0"),
            (lambda: PPO(clip_param=math.nan), r"'clip_param' must be a finite number"),
            (lambda: PPO(clip_param=math.inf), r"'clip_param' must be a finite number"),
            (lambda: PPO(value_loss_coef=-1.0), r"'value_loss_coef' must be >= 0 \(got -1.0\)"),
            (lambda: PPO(entropy_coef=-0.01), r"'entropy_coef' must be >= 0"),
            (lambda: PPO(clip_param="0.1"), r"'clip_param' must be a number"),
            (lambda: A2C(value_loss_coef=-0.5), r"'value_loss_coef' must be >= 0"),
            (lambda: A2C(entropy_coef=math.nan), r"'entropy_coef' must be a finite number"),
            (lambda: A2C(value_loss_coef=math.inf), r"'value_loss_coef' must be a finite number"),
            (lambda: A2C(entropy_coef=True), r"'entropy_coef' must be a number"),
            (lambda: PPO(entropy_method_name=""), r"'entropy_method_name' must be a non-empty"),
            (lambda: PPO(clip_decay=0.5), r"'clip_decay' must map a step count to a multiplier"),
        ],
    )
    def test_invalid_coefficients(self, factory: Any, message: str) -> None:
        """Out-of-range or non-numeric coefficients raise InvalidArgumentError."""
        with pytest.raises(InvalidArgumentError, match=message):
            factory()

    def test_zero_coefficients_allowed(self) -> None:
        """Zero value and entropy weights are valid and drop those terms from the total."""
        total, info = PPO(clip_param=0.2, value_loss_coef=0.0, entropy_coef=0.0)(
            step_count=0, batch=batch(), output=output()
        )
        assert total.item() == approx(info["action"])

from __future__ import annotations

from pathlib import Path

import pytest

from artlab_kohya.spec import SpecError, load_spec
from artlab_kohya.spec.model import DyLoraNetwork, HubSource, LoraNetwork
from artlab_kohya.spec.yamlpos import format_path, parse_path

MINIMAL = """\
model:
  source: models/base.safetensors
  family: sd15
dataset:
  subsets:
    - path: img/10_sks
network:
  type: lora
"""


def errors_of(path: Path, overrides: tuple[str, ...] = ()) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(path, overrides)
    return [str(i) for i in info.value.issues]


def test_minimal_spec_fills_defaults_and_resolves_paths(write_spec):
    path = write_spec(MINIMAL)
    loaded = load_spec(path)
    spec = loaded.spec
    assert spec.model.source.type == "local"
    assert spec.model.source.path == path.parent / "models/base.safetensors"
    assert spec.dataset.subsets[0].path == path.parent / "img/10_sks"
    assert isinstance(spec.network, LoraNetwork)
    assert (spec.network.dim, spec.network.alpha) == (128, 64)  # the guide's beginner rank
    assert spec.training.epochs == 10
    assert spec.optimizer.learning_rate == 1e-4


def test_every_error_at_once_with_its_line(write_spec):
    path = write_spec(
        """\
        model:
          source: models/base.safetensors
          clip_skip: 0
        dataset:
          batch_size: 0
          subsets:
            - path: img/10_sks
              repeats: lots
              netwrk: 3
        network:
          type: lorra
        optimizer:
          type: AdamW8bt
        training:
          mixed_precision: fp32
          learning_rate: 3
        """
    )
    assert errors_of(path) == [
        "spec.yaml:3: model.clip_skip: must be at least 1 (got 0)",
        "spec.yaml:5: dataset.batch_size: must be at least 1 (got 0)",
        "spec.yaml:8: dataset.subsets[0].repeats: must be a whole number or one of 'folder', 'auto' (got 'lots')",
        "spec.yaml:9: dataset.subsets[0].netwrk: unknown key 'netwrk' (known here: path, repeats, class_tokens, "
        "caption_extension, regularization, shuffle_caption, keep_tokens, flip_aug, color_aug, random_crop, "
        "caption_dropout_rate, caption_tag_dropout_rate, caption_dropout_every_n_epochs, keep_tokens_separator, "
        "secondary_separator, caption_prefix, caption_suffix)",
        "spec.yaml:11: network.type: must be one of lora, dylora, locon, loha, lokr, ia3, glora, boft, diag-oft "
        "(got 'lorra'); did you mean 'lora'?",
        "spec.yaml:13: optimizer.type: unknown optimizer 'AdamW8bt'; did you mean 'AdamW8bit'? (sd-scripts knows "
        "AdamW, AdamW8bit, PagedAdamW, PagedAdamW8bit, PagedAdamW32bit, Lion, Lion8bit, PagedLion8bit, SGDNesterov, "
        "SGDNesterov8bit, AdEMAMix8bit, PagedAdEMAMix8bit, DAdaptation, DAdaptAdamPreprint, DAdaptAdaGrad, "
        "DAdaptAdam, DAdaptAdan, DAdaptAdanIP, DAdaptLion, DAdaptSGD, Prodigy, Adafactor, RAdamScheduleFree, "
        "AdamWScheduleFree, SGDScheduleFree, or give a full class path such as torch.optim.RMSprop)",
        "spec.yaml:15: training.mixed_precision: must be one of 'no', 'fp16', 'bf16' (got 'fp32'); "
        "did you mean 'fp16'?",
        "spec.yaml:16: training.learning_rate: unknown key 'learning_rate' here; it belongs at optimizer.learning_rate",
    ]


def test_did_you_mean_for_a_near_miss(write_spec):
    path = write_spec(MINIMAL.replace("type: lora", "type: lora\n  dimm: 8"))
    assert errors_of(path) == ["spec.yaml:9: network.dimm: unknown key 'dimm'; did you mean 'dim'?"]


def test_kohya_names_point_to_their_spec_field(write_spec):
    path = write_spec(MINIMAL.replace("type: lora", "type: lora\n  network_dim: 8"))
    assert errors_of(path) == [
        "spec.yaml:9: network.network_dim: unknown key 'network_dim' here; it belongs at network.dim"
    ]


def test_unsupported_kohya_option_is_explained(write_spec):
    path = write_spec(MINIMAL + "training:\n  stop_text_encoder_training: 5\n")
    (message,) = errors_of(path)
    assert message.startswith("spec.yaml:10: training.stop_text_encoder_training: unknown key")
    assert "network.train: unet" in message


def test_missing_sections_are_required(write_spec):
    path = write_spec("network:\n  type: lora\n")
    assert errors_of(path) == ["spec.yaml:1: model: is required", "spec.yaml:1: dataset: is required"]


def test_yaml12_scalars_no_and_exponent_floats(write_spec):
    path = write_spec(
        MINIMAL + "optimizer:\n  learning_rate: 1e-4\n  unet_lr: 2E-4\ntraining:\n  mixed_precision: no\n"
    )
    spec = load_spec(path).spec
    assert spec.optimizer.learning_rate == 1e-4
    assert spec.optimizer.unet_lr == 2e-4
    assert spec.training.mixed_precision == "no"


def test_strict_types_do_not_coerce(write_spec):
    path = write_spec(MINIMAL + "training:\n  epochs: '10'\n  gradient_checkpointing: 1\n")
    assert errors_of(path) == [
        "spec.yaml:10: training.epochs: must be a whole number (got '10')",
        "spec.yaml:11: training.gradient_checkpointing: must be true or false (got 1)",
    ]


def test_duplicate_key_and_bad_yaml_are_located(write_spec):
    assert errors_of(write_spec(MINIMAL + "network:\n  type: lora\n")) == [
        "spec.yaml:9: key 'network' appears twice in the same table"
    ]
    (message,) = errors_of(write_spec("model: [1, 2\n"))
    assert message.startswith("spec.yaml:2: not valid YAML")


def test_empty_or_scalar_spec(write_spec):
    assert errors_of(write_spec("")) == [
        "spec.yaml:1: model: is required",
        "spec.yaml:1: dataset: is required",
        "spec.yaml:1: network: is required",
    ]
    assert errors_of(write_spec("hello\n")) == ["spec.yaml: a spec is a YAML mapping (model:, dataset:, network: ...)"]


def test_missing_file_is_one_line(tmp_path):
    (message,) = errors_of(tmp_path / "nope.yaml")
    assert "cannot read the spec" in message


def test_overrides_are_validated_and_located(write_spec):
    path = write_spec(MINIMAL)
    loaded = load_spec(path, ("network.dim=32", "dataset.subsets[0].repeats=5", "optimizer.learning_rate=1e-3"))
    assert loaded.spec.network.dim == 32
    assert loaded.spec.dataset.subsets[0].repeats == 5
    assert loaded.spec.optimizer.learning_rate == 1e-3
    assert [str(o) for o in loaded.overrides] == [
        "network.dim = 32 (not set in the file: its default before)",
        "dataset.subsets[0].repeats = 5 (not set in the file: its default before)",
        "optimizer.learning_rate = 0.001 (not set in the file: its default before)",
    ]
    assert errors_of(path, ("network.dim=0", "dataset.subsets.3.repeats=2", "oops")) == [
        "--set dataset.subsets.3.repeats=2: dataset.subsets[3] does not exist in the spec",
        "--set oops: write it as yaml.path=value, e.g. network.dim=32",
        "--set network.dim=0: network.dim: must be at least 1 (got 0)",
    ]


def test_override_replaces_a_value_from_the_file(write_spec):
    loaded = load_spec(write_spec(MINIMAL + "training:\n  epochs: 4\n"), ("training.epochs=6",))
    assert loaded.spec.training.epochs == 6
    assert str(loaded.overrides[0]) == "training.epochs = 6 (was 4)"


def test_model_source_forms(write_spec):
    hub = MINIMAL.replace(
        "source: models/base.safetensors",
        "source: {type: hub, repo: a/b, file: m.safetensors, revision: abc}",
    )
    source = load_spec(write_spec(hub)).spec.model.source
    assert isinstance(source, HubSource) and (source.repo, source.file, source.revision) == (
        "a/b",
        "m.safetensors",
        "abc",
    )
    alias = load_spec(write_spec(MINIMAL.replace("source: models/base.safetensors", "source: sd15"))).spec
    assert alias.model.source.type == "alias" and alias.model.source.name == "sd15"
    bad = write_spec(MINIMAL.replace("source: models/base.safetensors", "source: {type: hub, repo: a/b}"))
    assert errors_of(bad) == ["spec.yaml:2: model.source.file: is required"]


def test_cross_field_rules_are_errors_at_the_field(write_spec):
    path = write_spec(
        MINIMAL.replace("type: lora", "type: dylora\n  dim: 10\n  unit: 4")
        + "training:\n  epochs: 2\n  max_steps: 100\n"
        + "scheduler:\n  type: constant\n  warmup_steps: 10\n"
        + "launch:\n  num_processes: 2\n  gpu_ids: [0]\n"
    )
    path.write_text(path.read_text().replace("    - path: img/10_sks", "    - path: img/10_sks\n      color_aug: true"))
    assert errors_of(path) == [
        "spec.yaml:14: training.max_steps: give either training.epochs or training.max_steps, not both",
        "spec.yaml:17: scheduler.warmup_steps: sd-scripts refuses a warmup with the constant schedule; "
        "use constant_with_warmup or drop the warmup",
        "spec.yaml:7: dataset.subsets[0].color_aug: color_aug changes the pixels every epoch, so it cannot be used "
        "with cached latents; set training.cache_latents: off",
        "spec.yaml:11: network.unit: network.dim (10) must be a multiple of the unit (4)",
        "spec.yaml:20: launch.gpu_ids: lists 1 GPU(s) for 2 process(es); give one per process",
    ]


def test_guide_practice_becomes_warnings(write_spec):
    path = write_spec(
        """\
        model:
          source: models/base.safetensors
        dataset:
          resolution: 500
          subsets:
            - path: img/10_sks
        network:
          type: loha
          dim: 64
          alpha: 8
        optimizer:
          type: DAdaptAdam
          learning_rate: 1e-4
        """
    )
    assert [str(w) for w in load_spec(path).warnings] == [
        "spec.yaml:13: warning: optimizer.learning_rate: DAdaptAdam adapts its own step size; "
        "the guide sets the learning rate to 1.0 (got 0.0001)",
        "spec.yaml:9: warning: network.dim: the guide keeps loha dim at 32 or less (got 64)",
        "spec.yaml:10: warning: network.alpha: the guide uses alpha 1 for loha (got 8)",
        "spec.yaml:4: warning: dataset.resolution: [500, 500] is not a multiple of 64",
    ]


def test_alpha_above_dim_and_ckpt_warn(write_spec):
    path = write_spec(MINIMAL.replace("type: lora", "type: lora\n  dim: 8\n  alpha: 16") + "output:\n  format: ckpt\n")
    assert [str(w) for w in load_spec(path).warnings] == [
        "spec.yaml:10: warning: network.alpha: alpha 16 is above dim 8: the weights are scaled up by 2",
        "spec.yaml:12: warning: output.format: ckpt files are pickles that can run code when loaded; prefer safetensors",
    ]


def test_variant_fields_are_checked_per_type(write_spec):
    path = write_spec(MINIMAL.replace("type: lora", "type: lora\n  unit: 4"))
    assert errors_of(path) == ["spec.yaml:9: network.unit: unknown key 'unit' for type lora; only type dylora has it"]
    dylora = load_spec(write_spec(MINIMAL.replace("type: lora", "type: dylora\n  dim: 16\n  unit: 4"))).spec.network
    assert isinstance(dylora, DyLoraNetwork) and dylora.unit == 4


def test_path_syntax_round_trips():
    assert parse_path("dataset.subsets[0].repeats") == ("dataset", "subsets", 0, "repeats")
    assert parse_path("dataset.subsets.0.repeats") == ("dataset", "subsets", 0, "repeats")
    assert format_path(("dataset", "subsets", 0, "repeats")) == "dataset.subsets[0].repeats"
    with pytest.raises(ValueError):
        parse_path("dataset..x")


def test_rules_of_the_first_class_settings(write_spec):
    """What sd-scripts refuses is an error; what it ignores, a warning."""
    spec = MINIMAL.replace("  type: lora\n", "  type: dylora\n  scale_weight_norms: 1.0\n  args: {unit: 4}\n")
    spec += (
        "training:\n  adaptive_noise_scale: 0.01\n  min_timestep: 500\n  max_timestep: 400\n"
        "  scale_v_pred_loss_like_noise_pred: true\n"
    )
    assert errors_of(write_spec(spec)) == [
        "spec.yaml:10: network.args.unit: network.unit sets it; set that field instead",
        "spec.yaml:9: network.scale_weight_norms: networks.dylora has no max-norm regularization (sd-scripts would "
        "fail on it); use lora or a LyCORIS type",
        "spec.yaml:12: training.adaptive_noise_scale: needs training.noise_offset (sd-scripts refuses it alone)",
        "spec.yaml:13: training.min_timestep: must be below max_timestep (400)",
        "spec.yaml:15: training.scale_v_pred_loss_like_noise_pred: needs a v-prediction model (family sd2-v or "
        "sdxl-v, or model.v_parameterization); sd-scripts refuses it otherwise",
    ]
    warned = load_spec(
        write_spec(
            MINIMAL.replace("  type: lora\n", "  type: ia3\n")
            + "training:\n  huber_c: 0.2\n  multires_noise_discount: 0.3\n  zero_terminal_snr: true\n"
            + "  save_last_n_steps: 100\n  save_last_n_epochs_state: 2\n  prior_loss_weight: 0.5\n"
            + "output:\n  wandb_run_name: x\n"
        )
    ).warnings
    said = "\n".join(str(w) for w in warned)
    for text in ("huber_c: has no effect with loss_type l2", "multires_noise_discount: has no effect",
                 "zero_terminal_snr: is meant for v-prediction", "save_last_n_steps: only counts step checkpoints",
                 "wandb_run_name: is used only with output.log_with", "recommends preset ia3",
                 "save_last_n_epochs_state: only counts the states save_state writes",
                 "prior_loss_weight: has no effect without a regularization subset"):  # fmt: skip
        assert text in said, text
    dim_from_weights = MINIMAL.replace("  type: lora\n", "  type: lora\n  dim_from_weights: true\n")
    assert errors_of(write_spec(dim_from_weights)) == [
        "spec.yaml:9: network.dim_from_weights: needs network.weights, the file whose ranks it reads"
    ]


def test_network_args_may_not_replace_the_type_or_a_field(write_spec):
    """`type: locon` with `args: {algo: ia3}` used to train (IA)^3 in silence; now network.type says it."""
    path = write_spec(MINIMAL.replace("  type: lora\n", "  type: locon\n  args: {algo: ia3, conv_dim: 4}\n"))
    assert errors_of(path) == [
        "spec.yaml:9: network.args.algo: the algorithm is network.type (locon); set network.type instead (lora, "
        "dylora, locon, loha, lokr, ia3, glora, boft, diag-oft)",
        "spec.yaml:9: network.args.conv_dim: network.conv_dim sets it; set that field instead",
    ]


def test_bucket_step_is_what_sd_scripts_asserts_for_the_family(write_spec):
    sd15 = MINIMAL.replace("dataset:\n", "dataset:\n  buckets: {step: 32}\n")
    assert errors_of(write_spec(sd15)) == [
        "spec.yaml:5: dataset.buckets.step: sd-scripts asserts a multiple of 64 for sd15 (got 32)"
    ]
    load_spec(write_spec(sd15.replace("family: sd15", "family: sdxl")))  # 32 is SDXL's own step
    auto = sd15.replace("family: sd15", "family: auto").replace("step: 32", "step: 16")
    assert errors_of(write_spec(auto)) == [
        "spec.yaml:5: dataset.buckets.step: sd-scripts asserts a multiple of 32 for SDXL, and of 64 for SD1.x/SD2.x "
        "(got 16)"
    ]
    load_spec(write_spec(sd15.replace("{step: 32}", "{enabled: false, step: 32}")))  # not read without buckets


def test_a_random_seed_is_drawn_when_the_spec_is_read(write_spec):
    path = write_spec(MINIMAL + "training:\n  seed: random\n")
    first, second = load_spec(path), load_spec(path)
    assert first.seed_drawn and isinstance(first.spec.training.seed, int)
    assert 0 <= first.spec.training.seed < 2**32
    seeds = {load_spec(path).spec.training.seed for _ in range(5)} | {second.spec.training.seed}
    assert len(seeds) > 1
    assert not load_spec(write_spec(MINIMAL)).seed_drawn
    assert errors_of(write_spec(MINIMAL + "training:\n  seed: randum\n"))[0].startswith(
        "spec.yaml:10: training.seed: must be"
    )

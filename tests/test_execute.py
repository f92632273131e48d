"""The job -> engine adapter on the real engines: packing, INAL reuse, diverged and failed rows.

References: each job computed alone (for packed runs), the engines called directly with the
job's identity seeds (for the plumbing), and closed forms (E and the bound prefactor).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from inal_core.inal import estimate_inal
from inal_core.inal_summary import bootstrap_t_interval, selection_free_max
from inal_core.networks import NetworkSpec
from inal_core.ngd import NGDConfig, train_noisy_gd
from inal_core.rng import derive_seed
from inal_core.targets import extend
from sweeps.execute import plan_packs, run_inal_job, run_training_pack, write_failed
from sweeps.validation import validate_job
from sweeps.store import ResultsStore

TINY = ["n=4", "width=8", "depth=1", "T=3", "train.N=8", "train.checkpoints=2", "train.n_eval=256",
        "inal.n_inits=16", "device=cpu", "study=t"]
MEASURED = ["correlation", "correlation_se", "acc", "final_loss", "param_norm"]


@pytest.fixture(scope="module")
def make_job(compose_config):
    def make(results_dir, *overrides):
        return validate_job(compose_config([*TINY, f"results_dir={results_dir}", *overrides]))
    return make


def rows(results_dir, kind="runs"):
    df = ResultsStore(str(results_dir), "t").read(kind).to_pandas()
    return df.sort_values([c for c in ("run_id", "step", "layer") if c in df.columns]).reset_index(drop=True)


VARIANTS = [("gamma=0.05", "sigma=0.001", "train.seed=0"), ("gamma=0.2", "sigma=0.0", "train.seed=1"),
            ("gamma=0.1", "sigma=0.01", "train.seed=7")]


def test_plan_packs_groups_by_pack_key(make_job, tmp_path):
    jobs = [make_job(tmp_path, *v) for v in VARIANTS] + [make_job(tmp_path, "T=4"), make_job(tmp_path, "width=4")]
    packs = plan_packs(jobs, max_pack=2)
    assert [len(p) for p in packs] == [2, 1, 1, 1]
    assert all(len({j.pack_key for j in p}) == 1 for p in packs)
    assert [len(p) for p in plan_packs(jobs, max_pack=64)] == [3, 1, 1]
    assert [len(p) for p in plan_packs(jobs, max_pack=1)] == [1] * 5
    with pytest.raises(ValueError, match="max_pack"):
        plan_packs(jobs, 0)


def test_packed_equals_unpacked(make_job, tmp_path):
    packed = [make_job(tmp_path / "packed", *v) for v in VARIANTS]
    outcomes = run_training_pack(packed)
    assert [o.status for o in outcomes] == ["ok"] * 3
    for v in VARIANTS:
        (alone,) = run_training_pack([make_job(tmp_path / "alone", *v)])
        assert alone.status == "ok"
    a, b = rows(tmp_path / "packed"), rows(tmp_path / "alone")
    assert list(a.run_id) == list(b.run_id) and len(a) == 3
    assert list(a.engine_seed) == list(b.engine_seed)
    np.testing.assert_allclose(a[MEASURED].to_numpy(), b[MEASURED].to_numpy(), rtol=1e-5, atol=1e-7)
    ca, cb = rows(tmp_path / "packed", "curves"), rows(tmp_path / "alone", "curves")
    assert list(ca.step) == list(cb.step) and len(ca) == 3 * 2
    np.testing.assert_allclose(ca[["correlation", "acc", "loss", "param_norm"]].to_numpy(),
                               cb[["correlation", "acc", "loss", "param_norm"]].to_numpy(), rtol=1e-5, atol=1e-7)
    # distinct runs really differ (the pack did not reuse one run's numbers)
    assert len(set(np.round(a.param_norm, 9))) == 3


def test_rows_carry_the_engine_numbers_and_closed_forms(make_job, tmp_path):
    job = make_job(tmp_path, "gamma=0.1", "sigma=0.01", "train.A=0.5")
    run_training_pack([job])
    row = rows(tmp_path).iloc[0].to_dict()
    # the engine called directly with the job's identity seed
    target = extend(job.make_target(), 8)
    spec = NetworkSpec(8, 8, 1)
    direct = train_noisy_gd(target, spec, NGDConfig(T=3, gamma=[0.1], sigma=[0.01], A=0.5, checkpoints=2, n_eval=256),
                            [job.seed])
    assert row["correlation"] == pytest.approx(float(direct.corr[0]), rel=1e-6, abs=1e-9)
    assert row["param_norm"] == pytest.approx(float(direct.param_norm[0]), rel=1e-6)
    # closed forms: E = 8*8 + 8 (hidden) + 8*1 + 1 (output) = 81; prefactor = gamma T sqrt(E A) / sigma
    assert row["E"] == 81
    assert row["bound_prefactor"] == pytest.approx(0.1 * 3 * math.sqrt(81 * 0.5) / 0.01, rel=1e-12)
    assert tuple(row[k] for k in ("target", "n", "N", "c", "n_steps", "status", "seed")) == ("parity", 4, 8, 1.0, 3, "ok", 0)
    assert row["git_commit"] and row["host"] and row["torch_version"] == torch.__version__ and row["device"] == "cpu"
    assert row["inal_id"] == job.inal_id


def test_inal_once_per_setting_one_row_per_layer(make_job, tmp_path):
    first = make_job(tmp_path, "depth=2")
    run_training_pack([first])
    inal = rows(tmp_path, "inal")
    assert list(inal.layer) == [1, 2, 3] and inal.is_max.sum() == 1
    assert inal.inal.iloc[int(np.argmax(inal.inal))] == inal[inal.is_max].inal.iloc[0]
    direct = estimate_inal(first.make_target(), NetworkSpec(4, 8, 2), n_inits=16, method="exact", seed=first.inal_seed)
    np.testing.assert_allclose(inal.inal.to_numpy(), direct.per_layer, rtol=1e-9)
    assert set(inal.method) == {"exact"} and set(inal.n_inputs) == {16}
    # the stored bootstrap-t intervals are those of the per-initialization values, with the job's seed
    boot_seed = derive_seed(first.inal_seed, "inal_bootstrap")
    lo, hi, hi99 = bootstrap_t_interval(direct.per_init, seed=boot_seed, upper_tail=0.01)
    np.testing.assert_allclose(inal.inal_boot_lo.to_numpy(), lo, rtol=1e-9)
    np.testing.assert_allclose(inal.inal_boot_hi.to_numpy(), hi, rtol=1e-9)
    np.testing.assert_allclose(inal.inal_boot_hi99.to_numpy(), hi99, rtol=1e-9)
    assert np.all(inal.inal_boot_lo < inal.inal) and np.all(inal.inal < inal.inal_boot_hi)
    sf = selection_free_max(direct.per_init, level=0.95, seed=boot_seed)
    assert set(inal.selected_inal_boot_lo) == {sf.boot_lo} and set(inal.selected_inal_boot_hi) == {sf.boot_hi}
    assert set(inal.selected_inal_boot_hi99) == {sf.boot_hi99} and sf.boot_hi99 >= sf.boot_hi
    assert sf.boot_lo < sf.value < sf.boot_hi
    # the output neuron given the hidden layers: a parity has E_x f = 0, so no offset
    assert set(inal.output_offset) == {0.0}
    path = ResultsStore(str(tmp_path), "t").file_path("inal", "parity", first.inal_id)
    stamp = open(path, "rb").read()
    other = make_job(tmp_path, "depth=2", "gamma=0.3", "T=5")  # same INAL setting, another run
    assert other.inal_id == first.inal_id and other.run_id != first.run_id
    assert run_inal_job(other)["status"] == "skipped"
    run_training_pack([other])
    assert open(path, "rb").read() == stamp and len(rows(tmp_path, "inal")) == 3
    assert len(rows(tmp_path)) == 2


def test_inal_only_jobs(make_job, tmp_path):
    job = make_job(tmp_path, "T=0", "target=majority", "n=5", "train.N=5")
    assert not job.train
    (outcome,) = run_training_pack([job])
    assert outcome.status == "ok"
    assert len(rows(tmp_path, "inal")) == 2 and len(rows(tmp_path)) == 0
    assert ResultsStore(str(tmp_path), "t").pending([job]) == []


def test_diverged_run_is_a_row_and_the_others_finish(make_job, tmp_path):
    jobs = [make_job(tmp_path, "gamma=0.05"), make_job(tmp_path, "gamma=1e12", "sigma=1.0")]
    outcomes = run_training_pack(jobs)
    assert [o.status for o in outcomes] == ["ok", "diverged"]
    df = rows(tmp_path).set_index("run_id")
    bad = df.loc[jobs[1].run_id]
    assert bad.status == "diverged" and bad.diverged_step >= 1 and "non-finite" in bad.error
    assert df.loc[jobs[0].run_id].status == "ok" and math.isfinite(df.loc[jobs[0].run_id, "correlation"])
    assert ResultsStore(str(tmp_path), "t").completed_run_ids() == {j.run_id for j in jobs}


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA to fail for real")
def test_failure_becomes_failed_rows_and_is_retried(make_job, tmp_path):
    jobs = [make_job(tmp_path, *v) for v in VARIANTS[:2]]
    outcomes = run_training_pack(jobs, device="cuda")  # a real error: no CUDA here
    assert [o.status for o in outcomes] == ["failed", "failed"] and "CUDA" in outcomes[0].error
    df = rows(tmp_path)
    assert list(df.status) == ["failed", "failed"] and df.error.str.contains("CUDA").all()
    assert df["correlation"].isna().all() and (df.E == 8 * 8 + 8 + 8 + 1).all()
    store = ResultsStore(str(tmp_path), "t")
    assert store.completed_run_ids() == set() and store.pending(jobs) == jobs
    run_training_pack(jobs)  # retried on the next invocation: rows replaced, not doubled
    df = rows(tmp_path)
    assert list(df.status) == ["ok", "ok"] and store.pending(jobs) == []


def test_write_failed_for_a_lost_pack(make_job, tmp_path):
    jobs = [make_job(tmp_path, *VARIANTS[0]), make_job(tmp_path, "T=0")]
    outcomes = write_failed(jobs, "worker died: node lost")
    assert [o.status for o in outcomes] == ["failed", "failed"]
    df = rows(tmp_path)
    assert list(df.run_id) == [jobs[0].run_id] and df.error.iloc[0] == "worker died: node lost"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_pack_matches_cpu(make_job, tmp_path):
    jobs = [make_job(tmp_path / "cpu", *v) for v in VARIANTS]
    run_training_pack(jobs, device="cpu")
    run_training_pack([j.with_location(results_dir=str(tmp_path / "gpu")) for j in jobs], device="cuda")
    a, b = rows(tmp_path / "cpu"), rows(tmp_path / "gpu")
    assert list(a.run_id) == list(b.run_id) and set(b.device) == {"cuda"}
    np.testing.assert_allclose(a[MEASURED].to_numpy(), b[MEASURED].to_numpy(), rtol=1e-3, atol=1e-4)
    ia, ib = rows(tmp_path / "cpu", "inal"), rows(tmp_path / "gpu", "inal")
    np.testing.assert_allclose(ia.inal.to_numpy(), ib.inal.to_numpy(), rtol=1e-4)

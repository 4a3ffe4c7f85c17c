"""papermill executes every notebook in nbs/ under the smoke profile, one test per notebook.

One kernel at a time, also under `make test`'s parallel workers (conftest puts every kernel-starting test into the xdist group `serial`): notebooks with widgets can stall when kernels run concurrently (seen with papermill and ipywidgets: a cell with a widget can wait forever for its reply).
An execution timeout per cell is always set, and pytest-timeout is the backstop."""
import json
import math
from pathlib import Path

import papermill as pm
import pytest

from invdiff_nb.core import get_profile
from invdiff_nb.reproduce import list_notebooks, read_executed

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = list_notebooks(ROOT / 'nbs')
SMOKE = get_profile('smoke')

# Cheap invariants each notebook's results.json must satisfy even under the smoke profile: (key, what must hold, check).
# A key ending in '*' stands for every key with that prefix. Exact identities hold at any budget; quality numbers only
# have to be well-formed (a probability in [0, 1], a distance >= 0) because smoke trains for seconds.
P01 = lambda v: v is not None and 0.0 <= v <= 1.0
FIN = lambda v: isinstance(v, (int, float)) and math.isfinite(v)
POS = lambda v: FIN(v) and v > 0
NONNEG = lambda v: FIN(v) and v >= 0
TINY = lambda tol: (lambda v: FIN(v) and abs(v) <= tol)
INVARIANTS = {
    '00_core': [('checkpoint_bytes', POS), ('n_notation_entries', lambda v: v >= 19)],
    '01_data': [('n_classes', lambda v: v == 10), ('n_train', POS), ('n_test', POS), ('pixel_mean', lambda v: -1 <= v <= 1),
                ('toy_ring_n_modes', lambda v: v == 8), ('toy_ring_modes_covered', lambda v: 0 <= v <= 8),
                ('toy_ring_mode_share_*', P01), ('toy_ring_off_mode_share', P01)],
    '10_ddpm_forward': [('diffusers_max_rel_err', TINY(1e-5)), ('posterior_max_abs_err', TINY(1e-8)), ('mc_worst_z', lambda v: 0 <= v < 5),
                        ('true_noise_x0_max_abs_err', TINY(1e-4)), ('ddim_eta1_vs_ddpm_max_abs_diff', TINY(1e-5)),
                        ('custom_timesteps_max_rel_err', TINY(1e-5)), ('diffusers_n_trajectories', POS), ('abar_T_*', P01),
                        ('elbo_kl_vs_weighted_mse_max_abs_err', TINY(1e-6)), ('elbo_weight_snr_form_max_rel_err', TINY(1e-9))],
    '11_train': [('resume_bit_exact', lambda v: v is True)],
    '12_models': [('params_smoke', POS), ('params_cpu', POS), ('params_gpu', POS), ('params_mlp_ring', POS), ('unet_cpu_skip_connections', POS)],
    '12b_noisy_classifier': [('acc_t*', P01), ('first_loss', POS), ('final_loss', POS)],
    '13_sampling': [('cfg_w3_formula_max_abs_err', TINY(1e-4)), ('hand_loop_ddim_*', TINY(1e-4)),
                    ('hand_loop_ddpm_ours_max_abs_err', TINY(1e-4)), ('oracle_ours_*', TINY(1e-3)), ('noisy_clf_acc_*', P01),
                    ('judge_acc_test', P01), ('cfg_acc_*', P01), ('cg_acc_*', P01),
                    ('ddim_qsigma_marginal_mc_worst_z', lambda v: 0 <= v <= 4), ('tweedie_score_max_rel_err', TINY(1e-9)),
                    ('cfg_implicit_classifier_max_rel_err', TINY(1e-9)), ('cfg_ho_salimans_mapping_max_abs_err', TINY(1e-12)),
                    ('cg_guide_acc_*', P01), ('cg_saturated_*', P01), ('cfg_grid_sign_test_p', P01), ('cfg_check_acc_*', P01)],
    '14_metrics': [('precision_train_test', P01), ('recall_train_test', P01), ('fd_train_test', NONNEG), ('fd_noise_test', NONNEG),
                   ('classifier_test_accuracy', P01)],
    '15_ddpm_digits': [('fd_samples_test', NONNEG), ('fd_ddim50_test', NONNEG), ('precision', P01), ('recall', P01), ('final_loss', POS),
                       ('cond_class_accuracy', P01)],
    '20_d3pm': [('bpd_uniform', POS), ('bpd_absorbing', POS), ('bpd_gaussian', POS), ('bpd_max', lambda v: v == 1.0),
                ('bpd_max_k4', lambda v: v == 2.0), ('bpd_prior_*', lambda v: FIN(v) and 0 <= v < 0.01)],
    '21_d3pm_text': [('bpc_uniform', POS), ('bpc_absorbing', POS), ('bpc_bigram', POS), ('bpc_unigram', POS), ('bpc_prior_*', TINY(0.01))],
    '30_text': [('round_trip_rate', lambda v: v == 1.0), ('corpus_size', POS), ('vocab_size', POS)],
    '31_diffusion_lm': [('rounding_accuracy', P01), ('parse_rate_*', P01), ('length_exact_match', P01), ('control_success_*', P01),
                        ('n_uncond', POS), ('diffuseq_slot_recall', P01),
                        ('emb_pca_var_share_2d', P01)],
    '40_bias_data': [('wb_group_counts', lambda v: sum(v) > 0 and min(v) >= 0)],
    '41_bias_metrics': [('*_balanced_bias_score_labels', lambda v: v == 0.0), ('*_train_bias_score_labels', lambda v: 0 < v <= 1),
                        ('*_target_clf_acc', P01), ('*_bias_clf_acc', P01)],
    '50_invdiff': [('within_class_recall', lambda v: v >= 0.95), ('toy_module_params', POS),
                   ('risk_std_after_fit', FIN), ('planted_between_exact_K4_minority_recall', lambda v: v >= 0.8)],
    '51_invdiff_waterbirds': [('wb_bias_score_*', P01), ('ca_bias_score_*', P01), ('ff_bias_score_*', P01), ('wb_fd_*', NONNEG),
                              ('*_minority_recall', P01), ('n_seeds', lambda v: v == 2), ('*_bias_diff_lam0_se', NONNEG),
                              ('*_oracle_diff_jtt_se', NONNEG), ('*_balanced_diff_jtt_se', NONNEG)],
    '52_invdiff_theory': [('theory_train_std_*', NONNEG), ('theory_test_mean_*', POS)],
    '53_invdiff_cli': [('cli_bias_score_*', P01), ('cli_risk_spread_*', NONNEG), ('cli_module_params', POS)],
    '60_bench': [('ours_img_per_s', POS), ('plain_img_per_s', POS), ('params', POS)],
    '70_scenes': [('num_classes', lambda v: v == 5), ('pixel_share_*', P01), ('pair_changed_pixel_share', P01),
                  ('pair_no_change_mean_abs_diff', POS), ('ddpm_params', POS)],
    '71_ddpm_features': [('seg_miou_ddpm_features', P01), ('seg_miou_pixels', P01), ('seg_miou_unet_scratch', P01),
                         ('seg_best_single_miou', P01), ('seg_n_labelled', lambda v: v == 20),
                         ('seg_miou_by_t_block', lambda v: len(v) > 0 and all(P01(x) for x in v))],
    '72_change_detection': [('cd_f1_*', P01), ('cd_iou_*', P01), ('cd_oa_*', P01), ('cd_n_labelled_pairs', lambda v: v == 20)],
    '73_segdiff': [('segdiff_miou', P01), ('segdiff_uncertainty_error_auroc', P01), ('segdiff_reference_segmenter_miou', P01),
                   ('segdiff_miou_by_ensemble_size', lambda v: len(v) > 0 and all(P01(x) for x in v))],
    '74_semantic_synthesis': [('sdm_miou_w*', P01), ('sdm_fd_w*', NONNEG), ('sdm_segmenter_miou_real', P01), ('sdm_miou', P01),
                              ('sdm_fd_real_vs_real', NONNEG)],
    '75_inverse_problems': [('inpaint_psnr_*', NONNEG), ('inpaint_fd_*', NONNEG), ('sr_psnr_*', NONNEG), ('sr_fd_*', NONNEG),
                            ('repaint_model_calls', POS)],
    '76_reconstruction': [('recon_diffusion_consistency_*', TINY(1e-4)), ('recon_psnr_*', NONNEG),
                          ('recon_acceleration_*', lambda v: FIN(v) and v > 1)],
    '77_anoddpm': [('anoddpm_pixel_auroc_*', P01), ('anoddpm_dice_*', P01), ('anoddpm_large_blob_auroc_*', P01),
                   ('anoddpm_normal_score_*', NONNEG)],
    '78_diffpure': [('diffpure_robust_acc_*', P01), ('diffpure_clean_acc_*', P01), ('diffpure_small_eps_robust_acc_*', P01)],
    '90_reproduce': [('n_notebooks', lambda v: v == len(NOTEBOOKS)), ('demo_site_pages', POS), ('demo_site_broken_links_after_move', POS)],
    'index': [('example_images', lambda v: v == 2), ('example_groups', lambda v: v == 4)],
}


def _matching(res, key):
    if key.startswith('*'): return {k: v for k, v in res.items() if k.endswith(key[1:])}
    if key.endswith('*'): return {k: v for k, v in res.items() if k.startswith(key[:-1])}
    return {key: res.get(key, KeyError)}


def check_invariants(stem, res):
    "The broken invariants of one notebook's results (empty if all hold)."
    bad = []
    for key, ok in INVARIANTS.get(stem, []):
        found = _matching(res, key)
        if not found: bad.append(f'no key matches {key!r}')
        for k, v in found.items():
            if v is KeyError: bad.append(f'{k} missing')
            elif not ok(v): bad.append(f'{k} = {v!r}')
    return bad


def test_invariant_table_is_sound():
    "Every stem in the table is a notebook, and the checks reject obviously wrong values."
    assert set(INVARIANTS) <= {p.stem for p in NOTEBOOKS}
    assert check_invariants('30_text', {'round_trip_rate': 0.99, 'corpus_size': 5, 'vocab_size': 3}) == ['round_trip_rate = 0.99']
    assert check_invariants('13_sampling', {}) and check_invariants('41_bias_metrics', {'wb_balanced_bias_score_labels': float('nan')})


@pytest.mark.notebook
@pytest.mark.timeout(2 * SMOKE.notebook_timeout)
@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_under_smoke(nb, tmp_path):
    out_dir, executed = tmp_path / nb.stem, tmp_path / f'{nb.stem}.ipynb'
    out_dir.mkdir()
    try:
        pm.execute_notebook(str(nb), str(executed), parameters={'profile': 'smoke', 'seed': 0, 'out_dir': str(out_dir)},
                            kernel_name='python3', language='python', execution_timeout=SMOKE.notebook_timeout,
                            progress_bar=False, cwd=str(nb.parent))
    except pm.PapermillExecutionError:
        pytest.fail(read_executed(executed).message, pytrace=False)
    assert read_executed(executed).status == 'ok'
    results = out_dir / 'results.json'
    assert results.exists(), f'{nb.name} wrote no results.json into out_dir: call write_results(out_dir, ...)'
    res = json.loads(results.read_text())
    assert res['profile'] == 'smoke' and res['seed'] == 0, f'{nb.name}: results.json has {res}'
    bad = check_invariants(nb.stem, res)
    assert not bad, f'{nb.name}: results.json breaks its invariants: {bad}'

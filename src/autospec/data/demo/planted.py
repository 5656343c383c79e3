"""The demo cohort's planted group effect: what is changed, where, and how much per unit of ``effect``.

:func:`planted_description` is the content of the cohort's ``planted_effect.json``; the generator
(:mod:`.cohort`) applies exactly these constants.
"""

from __future__ import annotations

from typing import Any

from ..neuromark import domain_components
from . import aseg_stats as aseg
from . import ica_signals as ica

# planted effect: what, where, how much per unit of `effect`
VOLUME_STRUCTURES = ("Left-Hippocampus", "Right-Hippocampus", "Left-Thalamus", "Right-Thalamus")
VOLUME_CHANGE = -0.05  # relative volume change of those structures per unit effect
COUPLING_DOMAINS = ("SC", "DM")
COUPLING_CHANGE = 0.30  # within-domain correlation increase per unit effect
MAP_COMPONENTS = tuple(domain_components("SC") + domain_components("DM"))  # 1-based
MAP_CHANGE = -0.15  # relative blob-intensity change per unit effect


def planted_description(
    seed: int, effect: float, *, n_sz: int, n_hc: int, small: bool, grid_mm: float
) -> dict[str, Any]:
    """Exactly what :func:`.cohort.make_demo_cohort` plants (the content of ``planted_effect.json``)."""
    rho_sz = min(ica.BASE_COUPLING + COUPLING_CHANGE * effect, ica.COUPLING_MAX)
    return {
        "schema": "autospec-planted-effect/1",
        "seed": seed,
        "effect": effect,
        "null": effect == 0.0,
        "groups": {
            "SZ": {"Subject Type": "Patient", "n": n_sz},
            "HC": {"Subject Type": "Control", "n": n_hc},
        },
        "small": small,
        "demographics": "age, gender, handedness drawn from the same distribution in both groups",
        "volumes": {
            "structures": list(VOLUME_STRUCTURES),
            "relative_change_per_effect": VOLUME_CHANGE,
            "factor_sz": 1.0 + VOLUME_CHANGE * effect,
            "factor_hc": 1.0,
            "formula": f"V = T_s * (eTIV/eTIV_ref) * (1 + a_s*(age-{aseg.AGE_REF:g})) * "
            f"exp({aseg.VOLUME_NOISE_SD:g}*z) * factor; factor = 1 + ({VOLUME_CHANGE:g})*effect "
            "for SZ in the listed structures, else 1",
            "etiv": f"N({aseg.ETIV_MEAN:.0f}, {aseg.ETIV_SD:.0f}^2) mm^3 clipped to "
            f"[{aseg.ETIV_CLIP[0]:.0f}, {aseg.ETIV_CLIP[1]:.0f}], same for both groups",
            "age_slope_per_year": {"tissue": aseg.AGE_SLOPE, "ventricles_csf": aseg.AGE_SLOPE_CSF},
        },
        "timecourses": {
            "domains": list(COUPLING_DOMAINS),
            "components": [c for d in COUPLING_DOMAINS for c in domain_components(d)],
            "coupling_change_per_effect": COUPLING_CHANGE,
            "coupling_hc": ica.BASE_COUPLING,
            "coupling_sz": rho_sz,
            "coupling_other_domains": ica.BASE_COUPLING,
            "formula": f"x_c = b_c*(sqrt(r_d)*f_d + sqrt(1-r_d)*u_c + {ica.MEASUREMENT_NOISE:g}"
            "*w_c); r_d = within-domain correlation of the band-limited parts; SZ: r_d = "
            f"min({ica.BASE_COUPLING:g} + {COUPLING_CHANGE:g}*effect, {ica.COUPLING_MAX:g}) in "
            "the listed domains",
            "tr_s": ica.TR,
            "n_timepoints": ica.N_TIMEPOINTS,
            "band_hz": list(ica.BAND_HZ),
        },
        "spatial_maps": {
            "components": list(MAP_COMPONENTS),
            "relative_change_per_effect": MAP_CHANGE,
            "factor_sz": 1.0 + MAP_CHANGE * effect,
            "factor_hc": 1.0,
            "formula": "map_c = a_c*s_c*factor*gauss(mu_c + j_c, sigma_c) + "
            f"N(0, {ica.VOXEL_NOISE_SD:g}^2), zero outside the MNI152 mask; factor = 1 + "
            f"({MAP_CHANGE:g})*effect for SZ in the listed components",
            "grid_mm": grid_mm,
        },
    }

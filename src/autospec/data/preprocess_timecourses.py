"""GIFT ICA time courses -> a Dataset with X of shape (N, T, C).

Per subject, nothing fitted across subjects: components are selected, sessions concatenated
(``gift.sessions: all``, each session cleaned on its own) or one chosen, a subject recorded at
another TR resampled to ``gift.tr`` (``tr_policy: resample``), lengths made equal (cropped
before cleaning, zero-padded after, or refused), then ``nilearn.signal.clean`` (detrend,
Butterworth band-pass at the subject's TR, z-score over time).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
from nilearn import signal as nls
from scipy import signal as sps

from ..errors import InputError
from . import gift
from .cohort import CohortConfig, TimecourseOptions
from .component_labels import default_labels, resolve_components
from .dataset import Dataset
from .preprocess_common import base_meta, dataset_fields, subjects_for
from .subjects import TR_TOLERANCE, CohortSubjects

log = logging.getLogger(__name__)


def length_target(lengths: dict[str, int], policy: str, length: int | None) -> int:
    where = "gift.timecourses"
    if policy == "crop":
        target = length or min(lengths.values())
        short = [s for s, t in lengths.items() if t < target]
        if short:
            raise InputError(
                f"subject {short[0]}: {lengths[short[0]]} time points, fewer than "
                f"{where}.length {target} (length_policy crop)"
            )
    elif policy == "pad":
        target = length or max(lengths.values())
        long = [s for s, t in lengths.items() if t > target]
        if long:
            raise InputError(
                f"subject {long[0]}: {lengths[long[0]]} time points, more than "
                f"{where}.length {target} (length_policy pad)"
            )
    else:
        target = length or next(iter(lengths.values()))
        odd = [s for s, t in lengths.items() if t != target]
        if odd:
            first = next(iter(lengths))
            raise InputError(
                f"subject {odd[0]}: {lengths[odd[0]]} time points, expected {target} "
                f"({'field ' + where + '.length' if length else 'as subject ' + first}; "
                f"length_policy error)"
            )
    return target


def resample(ts: np.ndarray, tr_from: float, tr_to: float) -> np.ndarray:
    """(T, C) series sampled every ``tr_from`` s -> every ``tr_to`` s over the same span.

    Going to a coarser grid, a zero-phase Butterworth low-pass at 0.9 x the new Nyquist
    frequency is applied first (no aliasing); then linear interpolation.
    """
    if tr_to > tr_from and ts.shape[0] > 27:  # sosfiltfilt's padding needs enough samples
        sos = sps.butter(8, 0.9 * (0.5 / tr_to), btype="lowpass", fs=1.0 / tr_from, output="sos")
        ts = sps.sosfiltfilt(sos, ts, axis=0)
    t_old = np.arange(ts.shape[0]) * tr_from
    t_new = np.arange(int(np.floor(t_old[-1] / tr_to + 1e-9)) + 1) * tr_to
    return np.stack([np.interp(t_new, t_old, ts[:, c]) for c in range(ts.shape[1])], axis=1)


def _read_subject(
    subs: CohortSubjects, sid: str, cfg: CohortConfig, comps: list[int] | None, tr_out: float
) -> tuple[np.ndarray, np.ndarray]:
    """One subject's selected components, sessions concatenated, and the session of each row."""
    g = cfg.gift
    assert g is not None
    parts, runs = [], []
    for s, f in enumerate(subs.files[sid], start=1):
        ts = gift.select_components(gift.read_timecourses(f, g.n_components), comps, g.n_components)
        const = gift.constant_components(ts)
        if const:
            msg = f"subject {sid}: component(s) {', '.join(map(str, const[:5]))} constant over time (e.g. all zero) in {f}"
            if g.timecourses.constant_policy == "error":
                raise InputError(f"{msg} (gift.timecourses.constant_policy: error)")
            log.warning("%s; they stay 0 after cleaning", msg)
        tr = subs.tr.get(sid, tr_out)
        if abs(tr - tr_out) > TR_TOLERANCE:
            ts = resample(ts, tr, tr_out)
        parts.append(ts)
        runs.append(np.full(ts.shape[0], s))
    return np.concatenate(parts), np.concatenate(runs)


def _clean(ts: np.ndarray, runs: np.ndarray, cfg: CohortConfig, tr: float, *, sid: str, f: Any) -> np.ndarray:
    g = cfg.gift
    assert g is not None
    opts = g.timecourses
    use_filter = opts.low_pass is not None or opts.high_pass is not None
    try:
        with warnings.catch_warnings():  # constant series: reported above by policy
            warnings.simplefilter("ignore", UserWarning)
            cleaned: np.ndarray = nls.clean(  # nilearn's signature is unannotated
                ts,
                runs=runs if len(set(runs.tolist())) > 1 else None,
                detrend=opts.detrend,
                standardize=opts.standardize or None,
                filter="butterworth" if use_filter else False,
                low_pass=opts.low_pass,
                high_pass=opts.high_pass,
                t_r=tr,
            )
    except ValueError as err:
        raise InputError(
            f"subject {sid}: cannot clean {f} with {ts.shape[0]} time points ({str(err).splitlines()[0]})"
        ) from None
    return cleaned


def target_tr(subs: CohortSubjects, cfg: CohortConfig) -> float:
    g = cfg.gift
    assert g is not None
    if g.tr is not None:
        return g.tr
    return next(iter(subs.tr.values()))


def _check_below_nyquist(opts: TimecourseOptions, tr: float) -> None:
    nyquist = 0.5 / tr
    for key in ("low_pass", "high_pass"):
        value = getattr(opts, key)
        if value is not None and value >= nyquist:
            raise InputError(
                f"field gift.timecourses.{key}: {value} Hz is at or above the Nyquist frequency {nyquist:g} Hz of TR {tr:g} s"
            )


def preprocess_timecourses(cfg: CohortConfig, subjects: CohortSubjects | None = None) -> Dataset:
    """ICA time courses as a Dataset with X of shape (N, T, C)."""
    subs = subjects_for(cfg, "timecourses", subjects)
    g = cfg.gift
    assert g is not None
    opts = g.timecourses
    labels = default_labels(g.component_labels, g.n_components)
    comps = resolve_components(g.components, labels, g.n_components)
    tr = target_tr(subs, cfg)
    _check_below_nyquist(opts, tr)
    series = {sid: _read_subject(subs, sid, cfg, comps, tr) for sid in subs.ids}
    lengths = {s: t.shape[0] for s, (t, _) in series.items()}
    target = length_target(lengths, opts.length_policy, opts.length)
    cropped = [s for s, t in lengths.items() if t > target]
    padded = [s for s, t in lengths.items() if t < target]
    if cropped:
        log.info("timecourses: cropped to %d time points: %s", target, ", ".join(cropped))
    if padded:
        log.info("timecourses: zero-padded at the end to %d time points: %s", target, ", ".join(padded))
    out = []
    for sid in subs.ids:
        ts, runs = series[sid]
        clean = _clean(ts[:target], runs[:target], cfg, tr, sid=sid, f=subs.files[sid][0])
        if clean.shape[0] < target:
            clean = np.pad(clean, ((0, target - clean.shape[0]), (0, 0)))
        out.append(clean)
    resampled = sorted(s for s in subs.ids if abs(subs.tr.get(s, tr) - tr) > TR_TOLERANCE)
    if resampled:
        log.warning("timecourses: %d subject(s) resampled to TR %g s: %s", len(resampled), tr, ", ".join(resampled))
    used = comps or list(range(1, g.n_components + 1))
    meta = base_meta(cfg, "timecourses", subs)
    meta.update(
        axes=["subject", "time", "component"],
        tr=tr,
        subject_tr={s: subs.tr.get(s, tr) for s in subs.ids},
        resampled=resampled,
        sessions=g.sessions,
        gift_index=subs.gift_index,
        components=used,
        n_timepoints=target,
        original_lengths=lengths,
        length_policy=opts.length_policy,
        cropped=cropped,
        padded=padded,
        clean={
            "detrend": opts.detrend,
            "low_pass": opts.low_pass,
            "high_pass": opts.high_pass,
            "standardize": opts.standardize or None,
            "filter": "butterworth" if (opts.low_pass or opts.high_pass) else None,
        },
    )
    if labels is not None:
        meta["domains"] = labels.domain_list(used)
        meta["component_labels"] = [labels.labels.get(c) for c in used]
    return Dataset(X=np.stack(out), meta=meta, **dataset_fields(subs))

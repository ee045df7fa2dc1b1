"""Coarse-to-fine (pyramid) translation registration.

The method of the reference tool (``RegistrationScriptFINAL_hd5.py``, after
MATLAB "DownsampleReg"), with the same parameters and their meaning, and
without its failure modes:

- the pyramid levels are anti-aliased (``cv2.pyrDown`` Gaussian pyramids for
  the power-of-two rates, area averaging for the others); a level that cannot
  see the content (an atomic lattice finer than the level) is skipped;
- the first level is an exhaustive search over ``+/- max_movement / 2`` of
  the frame, scored by the normalised correlation over the overlap (one
  zero-padded FFT correlation plus summed-area tables), with a minimum
  overlap, ranking peaks by significance so extreme shifts with small
  overlaps cannot win on noise; equally good peaks (periodic content) are
  refined and the one nearest the previous frames' shift wins;
- every later level refines the estimate by Gauss-Newton (Lucas-Kanade)
  steps that fit a gain and an offset (robust to bleaching and darkening),
  sampling the frame with a 6-tap Lagrange filter; the last step is
  sub-pixel (bias below 0.005 px, 0.01 px precision where the data allow);
- the template is built from *registered* frames, so it cannot collapse into
  a blur when the drift is larger than the features (see
  :mod:`~napari_stackalign.core.pyramid._reference`);
- every frame is registered, frame 0 included;
- ``iterate`` re-estimates against a template refined from the registered
  frames; the result is one transform per frame, so the pixels are resampled
  once (by :func:`~napari_stackalign.core.apply.apply_transforms`);
- a rectangle ``roi`` and/or a ``mask`` restrict what is compared (a burned-in
  label cannot anchor the match); NaN pixels are ignored;
- frames are read and processed chunk by chunk, so memory stays flat for
  numpy, memmap, h5py and dask stacks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...progress import ProgressCallback, report
from ...transforms import FrameTransforms
from ..checks import check_stack
from ..volume import VOLUME_AXES, register_volumes
from ..workers import estimation_workers, thread_pool
from ._options import PYRAMID_DEFAULTS, PyramidOptions
from ._stages import plan_pyramid, run_stages

__all__ = ["register_pyramid"]


def register_pyramid(
    stack: Any,
    *,
    num_frames: int = PYRAMID_DEFAULTS.num_frames,
    reference_mode: str = PYRAMID_DEFAULTS.reference_mode,
    reference_frames: tuple[int, int] | None = PYRAMID_DEFAULTS.reference_frames,
    running_frames: int = PYRAMID_DEFAULTS.running_frames,
    keyframe_every: int = PYRAMID_DEFAULTS.keyframe_every,
    downsample_rates: Sequence[float] = PYRAMID_DEFAULTS.downsample_rates,
    max_movement: float = PYRAMID_DEFAULTS.max_movement,
    iterate: int = PYRAMID_DEFAULTS.iterate,
    smooth: bool = PYRAMID_DEFAULTS.smooth,
    window_length: int = PYRAMID_DEFAULTS.window_length,
    polyorder: int = PYRAMID_DEFAULTS.polyorder,
    roi: tuple[int, int, int, int] | None = PYRAMID_DEFAULTS.roi,
    mask: np.ndarray | None = PYRAMID_DEFAULTS.mask,
    normalize: bool = PYRAMID_DEFAULTS.normalize,
    reference: np.ndarray | None = None,
    kernel: str = PYRAMID_DEFAULTS.kernel,
    chunk_size: int = PYRAMID_DEFAULTS.chunk_size,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    options: PyramidOptions | None = None,
    axes: str | None = None,
    channel: int | None = None,
) -> FrameTransforms:
    """Estimate one translation per frame by coarse-to-fine correlation.

    Parameters
    ----------
    stack : array-like, shape (T, Y, X)
        Numpy array, memmap, h5py dataset or dask array; read chunk by chunk
        (``np.asarray(stack[i:j])``), never as a whole.
    num_frames : int
        The template is made of the first ``min(num_frames, T)`` frames
        (as in the reference tool), *registered among themselves* first so it
        stays sharp however far they drift (see
        :mod:`~napari_stackalign.core.pyramid._reference`).
    reference_mode : {"template", "frames", "previous", "running", "image"}
        What each frame is registered to. ``"template"``: the registered
        mean of the first ``num_frames`` frames (above). ``"frames"``: the
        registered mean of the frames ``reference_frames``. ``"image"``: the
        ``reference`` image. ``"previous"``: the last trustworthy frame
        before it (normally the previous one), the shifts chained along the
        stack. ``"running"``: the mean of the last ``running_frames``
        trustworthy frames, each resampled with its own shift. The chained
        modes (``"previous"``, ``"running"``) suit samples without a fixed
        structure (particles that diffuse and flow), whose later frames do
        not resemble the first ones; each link is tested (significance,
        engine flags), an untrustworthy one is not chained on, and after
        ``MAX_GAP`` of them in a row the chain is re-anchored (that frame is
        flagged), see :mod:`~napari_stackalign.core.pyramid._chain`. Giving
        ``reference_frames`` or ``reference`` with the default mode selects
        ``"frames"`` or ``"image"``.
    reference_frames : (int, int), optional
        Frames ``start:stop`` (stop excluded) whose registered mean is the
        template (mode ``"frames"``); those frames are, on average, left in
        place.
    running_frames : int
        Frames averaged into the running template (mode ``"running"``).
    keyframe_every : int
        Mode ``"previous"``: every this many frames, a frame is registered
        to the frame this many frames back instead (when that link is
        trustworthy), which bounds the drift of the chain; 1 registers every
        frame to the previous one only.
    downsample_rates : sequence of float
        Pyramid levels, visited in order (strictly increasing, each in
        (0, 1]; 1 is full resolution). The first level is searched
        exhaustively; the later ones refine. The last level sets the final
        precision (sub-pixel at that level).
    max_movement : float
        Largest expected motion as a fraction of the frame size, split over
        plus and minus: the search covers ``+/- max_movement / 2`` of the
        height and width (0.5 = +/-25 %). In (0, 1].
    iterate : int
        Registration passes. Each later pass averages the frames registered
        by the previous one into a refined template and estimates again; the
        transforms are composed, so pixels are resampled only once, when the
        caller applies them.
    smooth : bool
        Smooth the per-frame shifts with a Savitzky-Golay filter
        (``window_length``, ``polyorder``), see
        :func:`~napari_stackalign.core.smoothing.smooth_transforms`.
    window_length, polyorder : int
        Savitzky-Golay settings (used when ``smooth``).
    roi : (row_start, row_stop, col_start, col_stop), optional
        Only this rectangle of each frame is compared (e.g. rows below a
        burned-in label). The transforms apply to the whole frame.
    mask : ndarray of bool, shape (Y, X), optional
        Pixels to compare (True). Masked-out pixels are ignored in the
        search, the refinement and the template.
    normalize : bool
        Compare frames up to a gain and an offset: the template averages
        frames scaled to unit variance and the sub-pixel step fits a gain
        and an offset per frame, so slow intensity changes (bleaching,
        darkening) do not bias the match. False keeps the intensity scale
        (the template averages zero-mean frames and only an offset is
        fitted). The coarse search is a normalised correlation either way.
    reference : ndarray, shape (Y, X), optional
        A template image to register to, instead of building one (mode
        ``"image"``). It defines the coordinate frame of the result; with
        ``iterate > 1`` later passes refine it from the registered frames.
    kernel : {"lagrange6", "lagrange4", "lagrange8"}
        Interpolation of the frame in the sub-pixel step (Lagrange, 4 to 8
        taps). More taps mean less bias towards whole pixels on fine detail
        (worst case at 0.2 cycles/px: 0.008, 0.002, 0.0007 px) and a slightly
        smaller compared area at the borders.
    chunk_size : int
        Frames read and processed at a time (memory stays flat).
    workers : int, optional
        Threads that estimate frames (default 1: frame estimation is bound
        by the GIL and a second thread slows it down, see
        :func:`~napari_stackalign.core.workers.estimation_workers`).
    progress : callable, optional
        ``progress(done, total, stage)`` with stages ``"reference"`` (template
        building; ``"template k/n"`` for the refinements when iterating, which
        read only the template frames) and ``"estimate"`` (every frame); may
        raise :class:`~napari_stackalign.core.Cancelled`.
    options : PyramidOptions, optional
        All the options above in one object (checked when built); an explicit
        keyword that differs from its default overrides it.
    axes : {"TYX", "TZYX", "TCZYX"}, optional
        The stack's layout (default (T, Y, X)). ``"TZYX"`` and ``"TCZYX"``
        register volumes over time in 3-D (drift along Z included) and return
        :class:`~napari_stackalign.VolumeTransforms` (``dz`` next to ``dy``
        and ``dx``), see :func:`~napari_stackalign.core.volume.register_volumes`
        for what the options mean there and docs/volumes.md.
    channel : int, optional
        For ``"TCZYX"``: the channel the transforms are estimated on (default
        0); they apply to every channel.

    Returns
    -------
    FrameTransforms
        Translation per frame (the correction, ``registered[p] =
        frame[p - (dy, dx)]``), ``center`` the frame centre, ``method
        "pyramid"`` and all parameters in ``params`` (plus
        ``"template_frames"``, ``"reference_passes"``, ``"levels_used"``, the
        rates the estimation actually used, ``"flags"``, counts of the
        reasons frames were flagged, and ``"turn"``, the trustworthy frames'
        turn against the template as measured, not corrected (``"frames"``,
        ``"median_deg"``, ``"max_deg"``, ``"median_px_at_corners"``; a
        warning points to the similarity method beyond 1 px at the corners;
        absent in the chained modes); the chained modes add
        ``"chain_breaks"``, the frames the chain was re-anchored on,
        ``"gap_links"`` and ``"keyframe_links"``). With a built template the transforms are expressed
        so that the template frames are, on average, left where they are; in
        the chained modes the first usable frame is left where it is. ``quality`` is the normalised
        correlation coefficient between the registered frame and the template
        at the last level (over the compared overlap; 1 = identical up to
        gain and offset). ``ok`` is False for frames

        - without usable pixels (constant, empty, all NaN or all masked):
          their shift is interpolated from the neighbouring frames;
        - whose best coarse match lies on the edge of the search range (the
          motion may exceed ``max_movement``);
        - whose sub-pixel refinement failed or did not converge;
        - whose quality is below half the median quality of the stack.

    Raises
    ------
    ValueError
        For a stack that is not (T, Y, X), bad parameters, a window longer
        than the stack when smoothing, or a stack without any usable frame.
    """
    opts = PyramidOptions.from_call(options, locals())
    layout = None if axes is None else str(axes).upper()
    if layout in VOLUME_AXES:
        return register_volumes(stack, axes=layout, channel=channel, options=opts, reference=reference,
                                workers=workers, progress=progress)
    if layout not in (None, "TYX") or channel is not None:
        raise ValueError(
            f"register_pyramid takes axes 'TYX' (default), 'TZYX' or 'TCZYX', got axes={axes!r}"
            + (f" with channel={channel!r} (channel is for 'TCZYX')" if channel is not None else "") + "."
        )
    if len(getattr(stack, "shape", ())) in (4, 5):
        raise ValueError(
            f"a {len(stack.shape)}-D stack of shape {tuple(stack.shape)}: name its axes, axes='TZYX' or 'TCZYX' "
            "for volumes over time; for a (T, C, Y, X) stack use one channel (stack[:, c]) and apply the "
            "transforms to all channels."
        )
    n_total = check_stack(stack)[0]
    # one implementation of the orchestration: the stages that the streaming
    # and cluster paths run in pieces
    job = plan_pyramid(tuple(stack.shape), stack.dtype, opts)
    workers = estimation_workers(workers)
    with thread_pool(workers) if workers > 1 else contextlib.nullcontext() as pool:
        _, result = run_stages(stack, job, pool=pool, progress=progress)
    report(progress, n_total, n_total, "done")
    return result

"""From clicking to scripting: the ``stackalign`` command and the Python call of a run.

Every run of a widget records a :class:`Recipe`: the same work written as a
``stackalign ...`` command line and as a ``napari_stackalign`` Python snippet,
with the same parameters, ready to copy. The command and the snippet read the
layer's file; a layer that was not read from a file is written as ``INPUT.tif``
with a note to save it first.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..parsing import format_downsample_rates

__all__ = [
    "Recipe", "layer_source", "pairwise_recipe", "particles_recipe", "pyramid_recipe", "similarity_recipe",
    "trajectories_recipe",
]

#: what the command and the snippet read when the layer has no file
PLACEHOLDER_INPUT = "INPUT.tif"
#: the layer metadata key in which the reader records which channel of the file a split layer is
SOURCE_CHANNEL_KEY = "source_channel"


@dataclass(frozen=True)
class Recipe:
    """One run as a command line and as Python.

    Attributes
    ----------
    command : str
        The ``stackalign`` command line (shell-quoted).
    python : str
        A Python snippet; it leaves the result in ``transforms``.
    notes : tuple of str
        What the user must do first (save the layer to a file...).
    """

    command: str
    python: str
    notes: tuple[str, ...] = field(default=())

    def text(self) -> str:
        """Both, with the notes, as one text for the clipboard."""
        notes = "".join(f"# {note}\n" for note in self.notes)
        return f"{notes}# command line\n{self.command}\n\n# Python\n{self.python}"


def layer_source(layer: Any) -> str | None:
    """The file a layer was read from (napari's ``source.path`` or the reader's metadata), if any."""
    return getattr(getattr(layer, "source", None), "path", None) or dict(layer.metadata).get("source_path")


def _input(layer: Any) -> tuple[str, list[str]]:
    path = layer_source(layer)
    if path:
        return str(path), []
    note = (
        f"layer {layer.name!r} was not read from a file: save it as {PLACEHOLDER_INPUT} first (File > Save Selected "
        "Layers), or put its path in place of INPUT.tif"
    )
    return PLACEHOLDER_INPUT, [note]


def _stem(path: str) -> str:
    return str(Path(path).with_suffix(""))


def _py(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_py(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, float):
        return repr(value)
    return repr(value)


def _call(function: str, first: str, keywords: dict[str, Any]) -> str:
    args = [*([first] if first else []), *(f"{k}={_py(v)}" for k, v in keywords.items())]
    inner = ",\n    ".join(args)
    return f"{function}(\n    {inner},\n)"


# ---------------------------------------------------------------- pyramid
#: the pyramid options a recipe writes (the ones the widget's form sets)
PYRAMID_RECIPE_OPTIONS = (
    "num_frames", "downsample_rates", "max_movement", "iterate", "smooth", "window_length", "polyorder", "normalize",
)


def pyramid_recipe(
    layer: Any, options: Any, *, mask_layer: str | None = None, piecewise: Any = None, axes: str | None = None
) -> Recipe:
    """The command and the Python of a pyramid registration of ``layer`` with ``options``.

    ``axes="TZYX"``: the layer holds volumes over time, registered in 3-D. The
    file is read with ``volumes=True`` (the command always reads volumes as
    volumes); a layer that is one channel of a (T, C, Z, Y, X) file (this
    plugin's reader records ``source_channel``) adds ``--channel`` and
    ``channel=``, and the transforms apply to every channel of the file.

    ``piecewise`` (a :class:`~napari_stackalign.PiecewiseOptions`): the run was
    piecewise-rigid (``--piecewise`` and :func:`~napari_stackalign.register_piecewise`,
    with ``options`` as its rigid step).

    ``mask_layer`` names the Labels layer a mask came from: a mask is an
    array, which the command reads from a file (``--mask``), so the recipe
    says to save it.
    """
    path, notes = _input(layer)
    rates = "[" + format_downsample_rates(options.downsample_rates).replace(" ", "") + "]"
    argv = [
        "stackalign", "register", "-i", path, "-o", _stem(path) + "_registered.tif",
        "--transforms", _stem(path) + "_transforms.csv",
        "--num_frames", str(options.num_frames), "--downsample_rates", rates,
        "--max_movement", f"{options.max_movement:g}", "--iterate", str(options.iterate),
        "-s", str(int(options.smooth)), "--window_length", str(options.window_length),
        "--polyorder", str(options.polyorder), "--normalize", str(int(options.normalize)),
    ]
    keywords = {name: getattr(options, name) for name in PYRAMID_RECIPE_OPTIONS}
    _reference_recipe(options, argv, keywords, notes)
    if options.roi is not None:
        argv += ["--roi", ",".join(str(int(v)) for v in options.roi)]
        keywords["roi"] = tuple(int(v) for v in options.roi)
    if options.mask is not None:
        argv += ["--mask", "MASK.tif"]
        notes.append(
            f"the mask (from Labels layer {mask_layer!r}) is an array: save the compared pixels as MASK.tif "
            "(nonzero = compared) for the command; the Python below reads it from there too"
        )
        keywords["mask"] = _Raw('sa.read_stack("MASK.tif").data.astype(bool)')
    imports = "import napari_stackalign as sa\n" + ("import tifffile\n" if options.reference_mode == "image" else "")
    read = f"stack = sa.read_stack({path!r}).data\n"
    if axes is not None:
        channel = dict(layer.metadata).get(SOURCE_CHANNEL_KEY)
        read = f"data = sa.read_stack({path!r}, volumes=True)\nstack = data.data\n"
        keywords["axes"] = _Raw("data.axes")
        if channel is not None and path != PLACEHOLDER_INPUT:
            argv += ["--channel", str(int(channel))]
            keywords["channel"] = int(channel)
            notes.append(
                f"layer {layer.name!r} is channel {int(channel)} of {Path(path).name}: the command and the Python "
                "estimate on that channel and register every channel of the file"
            )
    estimate = _call("sa.register_pyramid", "stack", keywords)
    if piecewise is not None:
        argv += [
            "--piecewise", "--patch-size", str(piecewise.patch_size), "--patch-overlap", str(piecewise.patch_overlap),
            "--max-deviation", f"{piecewise.max_deviation:g}",
        ]
        fields = {name: getattr(piecewise, name) for name in ("patch_size", "patch_overlap", "max_deviation")}
        fields["rigid_options"] = _Raw(_call("sa.PyramidOptions", "", keywords))
        estimate = _call("sa.register_piecewise", "stack", fields)
    python = f"{imports}\n{read}transforms = {estimate}\nregistered = sa.apply_transforms(stack, transforms)\n"
    return Recipe(shlex.join(argv), python, tuple(notes))


def _reference_recipe(options: Any, argv: list[str], keywords: dict[str, Any], notes: list[str]) -> None:
    """Add the reference mode and its settings (none for the default template) to a pyramid recipe."""
    mode = options.reference_mode
    if mode == "template":
        return
    argv += ["--reference", mode]
    keywords["reference_mode"] = mode
    if mode == "frames":
        start, stop = options.reference_frames
        argv += ["--reference-frames", f"{start}:{stop}"]
        keywords["reference_frames"] = (int(start), int(stop))
    elif mode == "running":
        argv += ["--running-frames", str(options.running_frames)]
        keywords["running_frames"] = int(options.running_frames)
    elif mode == "previous":
        argv += ["--keyframe-every", str(options.keyframe_every)]
        keywords["keyframe_every"] = int(options.keyframe_every)
    elif mode == "image":
        argv += ["--reference-image", "REFERENCE.tif"]
        notes.append(
            "the reference image is an array: save it as REFERENCE.tif (a 2-D TIFF the size of a frame) for the "
            "command; the Python below reads it from there too"
        )
        keywords["reference"] = _Raw('tifffile.imread("REFERENCE.tif")')


class _Raw(str):
    """Python source written as it is (not quoted) in a recipe."""

    def __repr__(self) -> str:
        return str(self)


# ------------------------------------------------------------- similarity
def similarity_recipe(layer: Any, options: Any, *, channel: int | None, mode: str) -> Recipe:
    """The command and the Python of a similarity stacking of ``layer`` with ``options``."""
    path, notes = _input(layer)
    argv = [
        "stackalign", "stack", "-i", path, "-o", _stem(path) + "_average.tif",
        "--log", _stem(path) + "_transforms.csv", "--mode", mode,
        "--template", str(options.template), "--fallback", options.fallback,
    ]
    if channel is not None:
        argv += ["--channel", str(channel)]
    if options.angle_range is not None:
        argv += ["--angle-range", "{:g},{:g}".format(*options.angle_range)]
    if options.scale_range is not None:
        argv += ["--scale-range", "{:g},{:g}".format(*options.scale_range)]
    if options.min_success is not None:
        argv += ["--min-success", f"{options.min_success:g}"]
    keywords: dict[str, Any] = {"channel": channel} if channel is not None else {}
    keywords.update(
        template=options.template, angle_range=options.angle_range, scale_range=options.scale_range,
        min_success=options.min_success, fallback=options.fallback,
    )
    python = (
        "import napari_stackalign as sa\n\n"
        f"stack = sa.read_stack({path!r}).data\n"
        f"transforms = {_call('sa.register_similarity', 'stack', keywords)}\n"
        f"average = sa.average_frames(stack, transforms, mode={mode!r})\n"
    )
    return Recipe(shlex.join(argv), python, tuple(notes))


# --------------------------------------------------------------- pairwise
def _pairwise_flag(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}" if float(f"{value:g}") == value else repr(value)
    return str(value)


def pairwise_recipe(layer: Any, options: Any) -> Recipe:
    """The command (``stackalign average``) and the Python of a pairwise registration of ``layer``.

    Only the options that differ from :class:`PairwiseOptions`' defaults are
    written (the command's flags and the snippet's keywords share those
    defaults); ``registered`` becomes ``--registered OUT_registered.tif``.
    """
    from ..cli.average import CLI_OPTIONS  # the options the command offers as flags

    path, notes = _input(layer)
    if not isinstance(options.mask, str):
        raise TypeError("a mask array has no recipe here: the widget offers the named mask kinds only.")
    argv = [
        "stackalign", "average", "-i", path, "-o", _stem(path) + "_average.tif",
        "--transforms", _stem(path) + "_transforms.csv",
    ]
    if options.registered:
        argv += ["--registered", _stem(path) + "_registered.tif"]
    keywords: dict[str, Any] = {}
    defaults = type(options)()
    for name in CLI_OPTIONS:
        value = getattr(options, name)
        if value == getattr(defaults, name):
            continue
        if name == "average" and value is None:  # the command always averages; its shifts are the same
            keywords[name] = None
            notes.append("the command also writes the average (it has no 'measure only'): the shifts are the same")
            continue
        flag = "--" + name.replace("_", "-")
        text = ",".join(str(i) for i in value) if name == "bad_frames" else _pairwise_flag(value)
        argv += [flag, text]
        keywords[name] = tuple(int(i) for i in value) if name == "bad_frames" else value
    if options.registered:
        keywords["registered"] = True
    inner = "".join(f"\n    {k}={_py(v)}," for k, v in keywords.items())
    call = f"sa.PairwiseOptions({inner}\n)" if keywords else "sa.PairwiseOptions()"
    python = (
        "import napari_stackalign as sa\n\n"
        f"stack = sa.read_stack({path!r}).data\n"
        f"options = {call}\n"
        "result = sa.register_pairwise(stack, options=options)\n"
        "transforms = result.transforms\n"
        "average = result.average\n"
    )
    return Recipe(shlex.join(argv), python, tuple(notes))


# -------------------------------------------------------------- particles
#: what the command and the snippet read the picks from (the widget's "Save picks…")
PICKS_FILE = "PICKS.csv"


def particles_recipe(image: Any, options: Any, *, picks_layer: str | None = None) -> Recipe:
    """The command (``stackalign track``) and the Python of tracking the picks on ``image``.

    The picks are points on a layer: the command and the snippet read them
    from ``PICKS.csv``, which "Save picks…" writes (the picks whose fit
    passed are tracked, as in the widget). The command also corrects the
    stack from the tracks; ``--tracks`` holds the tracks the widget drew.
    """
    from ..core.particles import SPOT_TYPES

    path, notes = _input(image)
    spots = next(name for name, value in SPOT_TYPES.items() if value is options.dark)
    argv = [
        "stackalign", "track", "-i", path, "--picks", PICKS_FILE, "-o", _stem(path) + "_aligned.tif",
        "--tracks", _stem(path) + "_tracks.csv", "--transforms", _stem(path) + "_transforms.csv",
        "--box", str(int(options.box)), "--min-r2", f"{options.min_r2:g}", "--spots", spots,
    ]
    notes.append(
        f"save the picks (layer {picks_layer or 'picks'!r}) with 'Save picks…' in the Particles widget as "
        f"{PICKS_FILE} first: the command and the Python read them from there"
    )
    keywords = {"box": int(options.box), "min_r2": float(options.min_r2), "dark": options.dark}
    inner = "".join(f"\n    {k}={_py(v)}," for k, v in keywords.items())
    python = (
        "import napari_stackalign as sa\n\n"
        f"stack = sa.read_stack({path!r}).data\n"
        f"picks = sa.read_picks({PICKS_FILE!r}, only_ok=True)\n"
        f"options = sa.TrackOptions({inner}\n)\n"
        "tracks = sa.track_particles(stack, picks, options=options)\n"
    )
    return Recipe(shlex.join(argv), python, tuple(notes))


# ------------------------------------------------------------ trajectories
def trajectories_recipe(
    image: Any, tracks_layer: Any, options: Any, *, particles: list[int], holdout: list[int], statistic: str
) -> Recipe:
    """The command and the Python of a particle correction of ``image`` from ``tracks_layer``'s tracks.

    The Python starts from the tracks (their CSV, when the layer was loaded
    from one); the command line starts one step earlier, from the picks, and
    tracks them again.
    """
    path, notes = _input(image)
    block = dict(tracks_layer.metadata).get("stackalign") or {}
    tracks_csv = block.get("loaded_from")
    if not tracks_csv:
        tracks_csv = "TRACKS.csv"
        notes.append(
            f"save the tracks of layer {tracks_layer.name!r} as TRACKS.csv (ParticleTracks.to_csv) for the Python; "
            "the command starts from the picks saved in the Particles widget (PICKS.csv)"
        )
    argv = [
        "stackalign", "track", "-i", path, "--picks", "PICKS.csv", "-o", _stem(path) + "_aligned.tif",
        "--transforms", _stem(path) + "_transforms.csv", "--particles", ",".join(str(p) for p in particles),
        "--min-particles", str(options.min_particles), "--interpolation", options.interpolation,
        "--reference-frame", str(options.reference_frame), "--statistic", statistic,
    ]
    if holdout:
        argv += ["--holdout", ",".join(str(p) for p in holdout)]
    if not options.allow_rotation:
        argv.append("--no-rotation")
    keywords = {
        "particles": list(particles), "allow_rotation": options.allow_rotation,
        "min_particles": options.min_particles, "reference_frame": options.reference_frame,
        "interpolation": options.interpolation, "weighted": options.weighted, "iterations": options.iterations,
    }
    python = (
        "import napari_stackalign as sa\n\n"
        f"stack = sa.read_stack({path!r}).data\n"
        f"tracks = sa.ParticleTracks.from_csv({str(tracks_csv)!r})\n"
        f"transforms = {_call('sa.rigid_from_tracks', 'tracks', keywords)}\n"
        "aligned = sa.apply_transforms(stack, transforms)\n"
    )
    return Recipe(shlex.join(argv), python, tuple(notes))

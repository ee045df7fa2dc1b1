"""Command-line flags built from an options object."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from napari_stackalign.cli._options import add_option_arguments, options_from_args
from napari_stackalign.core.options import Options, option


@dataclass(frozen=True)
class Demo(Options):
    num_frames: int = option(100, "frames in the template", kind="int", minimum=1)
    max_movement: float = option(0.5, "largest motion (0.5 = +/-25 %)", kind="float", minimum=0, maximum=1)
    smooth: bool = option(False, "smooth the offsets", kind="bool")
    mode: str = option("full", "average mode", kind="str", choices=("full", "crop"))
    rates: tuple[float, ...] = option((0.5, 1.0), "levels")


def _parser(**kwargs):
    p = argparse.ArgumentParser(exit_on_error=False)
    add_option_arguments(p, Demo, list(Demo.specs()), **kwargs)
    return p


def test_flags_carry_the_options_defaults_types_and_help():
    p = _parser(parsers={"rates": lambda s: tuple(float(v) for v in s.split(","))})
    args = p.parse_args([])
    assert options_from_args(Demo, args, Demo.specs()) == Demo()
    args = p.parse_args(["--num-frames", "20", "--max_movement", "0.25", "--smooth", "1", "--mode", "crop",
                         "--rates", "0.25,1"])
    got = options_from_args(Demo, args, Demo.specs())
    assert (got.num_frames, got.max_movement, got.smooth, got.mode, got.rates) == (20, 0.25, True, "crop", (0.25, 1.0))
    text = p.format_help()
    assert "frames in the template (default 100; of at least 1)" in text
    assert "+/-25 %" in text  # a literal percent sign survives argparse's formatting
    assert "{full,crop}" in text and "{0,1}" in text


def test_bad_choice_is_refused_by_the_parser_and_bad_range_by_the_options():
    p = _parser()
    with pytest.raises(argparse.ArgumentError):
        p.parse_args(["--mode", "middle"])
    with pytest.raises(argparse.ArgumentError):
        p.parse_args(["--smooth", "2"])
    args = p.parse_args(["--num_frames", "0"])
    with pytest.raises(ValueError, match="num_frames must be an integer of at least 1"):
        options_from_args(Demo, args, Demo.specs())


def test_custom_spellings_flag_style_and_extra_values():
    p = argparse.ArgumentParser()
    add_option_arguments(p, Demo, ["smooth", "mode"], flags={"smooth": ("-s", "--smooth")}, bool_style="flag")
    assert p.parse_args(["-s"]).smooth is True
    assert p.parse_args(["--no-smooth"]).smooth is False
    got = options_from_args(Demo, p.parse_args([]), ["smooth", "mode"], num_frames=7)
    assert (got.smooth, got.num_frames) == (False, 7)

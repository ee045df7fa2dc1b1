"""Overall progress across a run's stages, in plain words, with the time left.

The core reports ``progress(done, total, stage)`` per stage (``"reference"``,
``"template 2/3"``, ``"estimate"``, ``"apply"``...), each stage restarting at
zero. :class:`OverallProgress` turns those reports into one fraction of the
whole run (each stage weighted by its share of the work), a sentence for users
("Estimating the motion of each frame") and an estimate of the time left.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["OverallProgress", "Stage", "describe_time_left", "stage_words"]

#: what the core's stage names mean, in words (a stage not listed is shown as it is, capitalised)
STAGE_WORDS = {
    "reference": "Building the template",
    "template": "Refining the template",
    "estimate": "Estimating the motion of each frame",
    "apply": "Correcting the frames",
    "average": "Averaging the registered frames",
    "similarity": "Measuring rotation, scale and shift",
    "mean template": "Building the mean template",
    "mean image": "Computing the mean image",
    "correlation": "Comparing each frame with the mean",
    "residual motion": "Measuring the motion left",
    "track": "Tracking the particles",
    "fit": "Fitting the particles",
    "validate": "Checking the alignment",
    "done": "Finishing",
}
_PASS = re.compile(r"^(?P<key>.*?)\s*\(?(?:pass\s+)?(?P<k>\d+)\s*(?:/|of)\s*(?P<n>\d+)\)?$")


def _split(stage: str) -> tuple[str, int, int]:
    """``"template 2/3"`` -> ``("template", 2, 3)``; a stage without passes is pass 1 of 1."""
    match = _PASS.match(stage.strip())
    if match and match.group("key"):
        return match.group("key").strip(), int(match.group("k")), max(int(match.group("n")), 1)
    return stage.strip(), 1, 1


def stage_words(stage: str) -> str:
    """A core stage name as a sentence for users, e.g. ``"template 2/3"`` -> ``"Refining the template (pass 2 of 3)"``."""
    key, k, n = _split(stage)
    known = [name for name in STAGE_WORDS if key == name or key.startswith(name + " ")]
    if known:
        name = max(known, key=len)  # "mean template" before "mean"
        words = STAGE_WORDS[name] + key[len(name) :]
    else:
        words = key[:1].upper() + key[1:]
    return f"{words} (pass {k} of {n})" if n > 1 else words


def describe_time_left(seconds: float) -> str:
    """``"about 40 s left"``, ``"about 3 min left"``."""
    if seconds < 1:
        return "less than a second left"
    if seconds < 90:
        return f"about {round(seconds):d} s left"
    if seconds < 5400:
        return f"about {round(seconds / 60):d} min left"
    return f"about {seconds / 3600:.1f} h left"


@dataclass(frozen=True)
class Stage:
    """One stage of a run: the core's name for it (a prefix) and its share of the work.

    ``whole_run_count``: the stage's ``done / total`` already counts over all
    its passes (similarity's bar), so a ``"pass k of n"`` in its name is not
    split again.
    """

    key: str
    weight: float = 1.0
    whole_run_count: bool = False


class OverallProgress:
    """The fraction of a whole run done, from per-stage reports.

    Parameters
    ----------
    stages : sequence of Stage or str
        The stages in the order they run, with their relative weights. A
        stage reported but not planned is added with weight 1 at the end.
    clock : callable, optional
        Seconds since some start (for tests); default :func:`time.monotonic`.
    """

    def __init__(self, stages: Sequence[Stage | str] = (), clock: Callable[[], float] = time.monotonic) -> None:
        self.stages = [s if isinstance(s, Stage) else Stage(s) for s in stages]
        self._clock = clock
        self._start = clock()
        self.fraction = 0.0

    def _index(self, key: str) -> int:
        for i, stage in enumerate(self.stages):
            if key == stage.key or key.startswith(stage.key):
                return i
        self.stages.append(Stage(key))
        return len(self.stages) - 1

    def update(self, done: int, total: int, stage: str) -> float:
        """Record one report; returns the overall fraction done (never going back)."""
        key, k, n = _split(stage)
        if key == "done":
            self.fraction = 1.0
            return self.fraction
        index = self._index(key)
        weights = [s.weight for s in self.stages]
        whole = sum(weights) or 1.0
        within = min(max(done / total, 0.0), 1.0) if total > 0 else 0.0
        if not self.stages[index].whole_run_count:
            within = ((k - 1) + within) / n
        fraction = (sum(weights[:index]) + weights[index] * within) / whole
        self.fraction = max(self.fraction, min(fraction, 1.0))
        return self.fraction

    @property
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return self._clock() - self._start

    def seconds_left(self) -> float | None:
        """The time left at the pace so far (None until there is a pace to go by)."""
        elapsed = self.elapsed
        if self.fraction < 0.02 or elapsed < 0.5:
            return None
        return elapsed * (1.0 - self.fraction) / self.fraction

    def text(self, stage: str) -> str:
        """The status line: the stage in words, the overall percentage and the time left."""
        parts = [stage_words(stage), f"{100 * self.fraction:.0f} % of the run"]
        left = self.seconds_left()
        if left is not None and self.fraction < 1:
            parts.append(describe_time_left(left))
        return " · ".join(parts)

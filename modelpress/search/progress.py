"""The search's live line: one bar per profile counting trials, its description naming what runs now.

    progress = Progress(enabled=True)
    progress.start("cortex-m")
    progress.phase("fine-tuning prune 50% + int8: 3 epoch(s)")   # -> press cortex-m: fine-tuning prune 50% ...
    progress.trial_done("best 12.3 KB gzip, 0.041 ms, drop +0.30 pt")
    progress.close()

The phases the engine and the strategy name: fine-tuning (with its epochs; the fine-tuning loop's own bar
counts them when the search runs in this process), quantization-aware training (a fine-tuning whose steps end
with ``qat``), converting, scoring, timing, ranking int8 layers, trials running on the workers, re-timing.
"""

from __future__ import annotations

from typing import Any


class Progress:
    """A tqdm bar per profile (none when disabled); ``phase`` says what is running, ``trial_done`` counts."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar: Any = None
        self.profile = ""

    def start(self, profile: str) -> None:
        from tqdm.auto import tqdm

        self.close()
        self.profile = profile
        self.bar = tqdm(desc=f"press {profile}", unit="trial", disable=not self.enabled, leave=True,
                        dynamic_ncols=True)

    def phase(self, text: str) -> None:
        """Name what runs now (shown at once, before the work it names starts)."""
        if self.bar is not None:
            self.bar.set_description_str(f"press {self.profile}: {text}")

    def trial_done(self, best: str | None) -> None:
        if self.bar is None:
            return
        self.bar.set_description_str(f"press {self.profile}", refresh=False)
        self.bar.update(1)
        if best:
            self.bar.set_postfix_str(best)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

"""Progress of a sweep: a rich bar with ETA on a terminal, one plain line per configuration otherwise."""

from __future__ import annotations

from llmecon.units import number, si


def label(cfg: dict) -> str:
    return f"{cfg.get('name') or cfg['model']} {cfg['phase']} b={cfg['batch_size']} s={cfg['seq_len']}"


def summary(rec: dict) -> str:
    """'ok 92,299 tokens/s (median 1.39 ms, n=193)', or the status and its reasons."""
    t = rec.get("timing") or {}
    med = t.get("median_s")
    if rec["status"] in ("ok", "invalid") and med:
        scale = (rec.get("model") or {}).get("time_scale") or 1.0
        tps = rec["work"]["tokens_per_step"] / (med * scale)
        built = f" as built, whole model extrapolated x{scale:.3g}" if scale != 1.0 else ""
        return f"{rec['status']} {number(tps)} tokens/s (median {si(med, 's')}{built}, n={t.get('n_samples')})"
    return f"{rec['status']}: {'; '.join(rec.get('reasons') or []) or 'no reason given'}"


class Progress:
    """``begin(cfg)`` when a configuration starts, ``finish(record)`` when its record is written."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.enabled = total, 0, enabled
        self._bar = None
        if not enabled:
            return
        from rich.console import Console

        self.console = Console(stderr=True)
        if self.console.is_terminal:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 console=self.console, transient=True)
            self._bar.start()
            self._task = self._bar.add_task("bench", total=total)

    def begin(self, cfg: dict) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=label(cfg))

    def finish(self, rec: dict) -> None:
        self.done += 1
        if not self.enabled:
            return
        cfg = {**rec["config"], "name": (rec.get("model") or {}).get("name")}
        line = f"[{self.done}/{self.total}] {label(cfg)}: {summary(rec)}"
        if self._bar is not None:
            self._bar.console.print(line, highlight=False, markup=False)
            self._bar.update(self._task, advance=1)
        else:
            self.console.print(line, highlight=False, markup=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

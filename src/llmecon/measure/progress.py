"""Progress of a sweep: a rich bar with ETA on a terminal (one step per round of a configuration), one plain
line per finished pass of rounds and per configuration otherwise."""

from __future__ import annotations

from llmecon.units import number, si, spread


def label(cfg: dict) -> str:
    return f"{cfg.get('name') or cfg['model']} {cfg['phase']} b={cfg['batch_size']} s={cfg['seq_len']}"


def summary(rec: dict) -> str:
    """'ok 92,299 tokens/s (step 1.39 ms, +-1.2 % over 5 rounds)', or the status and its reasons."""
    t = rec.get("timing") or {}
    step = t.get("step_s")
    if rec["status"] in ("ok", "invalid") and step:
        scale = (rec.get("model") or {}).get("time_scale") or 1.0
        tps = rec["work"]["tokens_per_step"] / (step * scale)
        built = f" as built, whole model extrapolated x{scale:.3g}" if scale != 1.0 else ""
        rounds = len(t.get("rounds") or [])
        noise = spread(t.get("spread"), rounds) + (f" over {rounds} rounds" if rounds > 1 else "")
        return f"{rec['status']} {number(tps)} tokens/s (step {si(step, 's')}{built}, {noise})"
    return f"{rec['status']}: {'; '.join(rec.get('reasons') or []) or 'no reason given'}"


class Progress:
    """``begin(cfg, round)`` when a round starts, ``round_done()`` when it ends, ``pass_done(...)`` after a pass
    over a model's configurations, ``finish(record)`` when a record is written."""

    def __init__(self, total: int, enabled: bool, rounds: int = 1):
        self.total, self.done, self.enabled, self.rounds = total, 0, enabled, rounds
        self._rounds_done: dict[str, int] = {}
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
            self._task = self._bar.add_task("bench", total=total * rounds)

    def begin(self, cfg: dict, round_index: int = 0) -> None:
        if self._bar is not None:
            suffix = f" · round {round_index + 1}/{self.rounds}" if self.rounds > 1 else ""
            self._bar.update(self._task, description=label(cfg) + suffix)

    def round_done(self, config_id: str) -> None:
        self._rounds_done[config_id] = self._rounds_done.get(config_id, 0) + 1
        if self._bar is not None:
            self._bar.update(self._task, advance=1)

    def pass_done(self, cfg: dict, round_number: int, n: int) -> None:
        """A plain line per pass when there is no bar (CI logs), so a long sweep is never silent."""
        if self.enabled and self._bar is None and self.rounds > 1:
            self.console.print(f"  round {round_number}/{self.rounds} of {n} {cfg.get('name') or cfg['model']} "
                               "configuration(s) done", highlight=False, markup=False)

    def finish(self, rec: dict) -> None:
        self.done += 1
        if not self.enabled:
            return
        cfg = {**rec["config"], "name": (rec.get("model") or {}).get("name")}
        line = f"[{self.done}/{self.total}] {label(cfg)}: {summary(rec)}"
        if self._bar is not None:
            self._bar.console.print(line, highlight=False, markup=False)
            # a failed or skipped configuration will not run its remaining rounds
            self._bar.update(self._task, advance=max(0, self.rounds - self._rounds_done.get(rec["config_id"], 0)))
        else:
            self.console.print(line, highlight=False, markup=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

"""The app's repair flow: the preview (a modal naming every target), the apply worker on a connection
of its own, run only because the operator pressed `y` and never again after a reconnect, its audit
record and results; and the copies (psql one-liners, the script). A mixin of SeqtuiApp (app.py)."""

from __future__ import annotations

from textual import work

from ..apply import FAILED, FIXED, FixResult, apply_plans
from ..audit import AuditError, AuditLog, default_path as default_audit_path
from ..connect import ConnectError, connect
from ..model import Status
from ..redact import gate
from ..repair import FixPlan, describe, oneliner, plans_from_verdicts, script
from .messages import ApplyFinished, ApplyProgress
from .screens import CopyScreen, PreviewScreen, ResultsScreen


class RepairFlow:
    def action_explain_read_only(self) -> None:
        self.notify(f"Repairs are not offered: {self.read_only_reason()}. "
                    "c copies the SQL for someone who can run it.", title="Read-only", severity="warning")

    def action_preview(self) -> None:
        reason = self.read_only_reason()
        if reason:
            self.action_explain_read_only()
            return
        if self.applying:
            self.notify("A repair is running; wait for its results.", severity="warning")
            return
        if self.lost is not None or self.report is None:
            self.notify("Not connected: the table is stale. Repairs wait for a fresh scan.", severity="warning")
            return
        chosen = self.chosen()
        if not chosen:
            self.notify("Nothing under the cursor.", severity="warning")
            return
        behind = {v.sequence.oid for v in chosen if v.status is Status.BEHIND}
        nothing = [f"{v.label or v.sequence.display_name}: {v.status.value}"
                   + (f" ({v.detail})" if v.detail else "")
                   for v in chosen if v.status is not Status.BEHIND]
        plans = plans_from_verdicts(self._rows_of_sequences(behind))

        def confirmed(ok: bool | None) -> None:
            if ok:
                self.apply(plans)

        self.push_screen(PreviewScreen(plans, nothing, self.lock_timeout, self.statement_timeout), callback=confirmed)

    def apply(self, plans: list[FixPlan]) -> None:
        """Run confirmed plans once. Called only from the preview's `y`: never on a timer or a reconnect."""
        try:  # like `seqtui fix`: no change without a writable record of it
            audit = AuditLog(self.audit_path or default_audit_path(), dict(self.report.database), "tui").open()
        except AuditError as exc:
            self.notify(str(exc), title="Not applied", severity="error", timeout=10)
            return
        self.applying = True
        self.last_results = []
        self._results_screen = ResultsScreen(len(plans))
        self.push_screen(self._results_screen)
        self._show_header()
        self._apply_worker(plans, audit)

    @work(thread=True, exclusive=True, exit_on_error=False, group="apply")
    def _apply_worker(self, plans: list[FixPlan], audit: AuditLog) -> None:
        # A connection of its own: the refresh worker may be mid-scan on the other one, and a fix's
        # BEGIN ... COMMIT must not interleave with anything.
        try:
            conn = connect(self.target)
        except ConnectError as exc:
            results = [FixResult(p, FAILED, p.next_value, p.next_value, f"not attempted: {exc}") for p in plans]
            for r in results:
                self._record(audit, r)
                self.post_message(ApplyProgress(r))
            self.post_message(ApplyFinished(results))
            return
        results: list[FixResult] = []

        def on_result(result: FixResult) -> None:
            self._record(audit, result)
            self.post_message(ApplyProgress(result))

        try:
            with audit:
                results = apply_plans(conn, plans, self.lock_timeout, on_result=on_result,
                                      statement_timeout=self.statement_timeout)
        except Exception as exc:  # apply_plans reports per plan; this is a last line of defence
            done = {id(r.plan) for r in results}
            for p in plans:
                if id(p) not in done:
                    r = FixResult(p, "unknown", p.next_value, None,
                                  self.target.redact(f"{type(exc).__name__}: {exc}; re-run check"))
                    results.append(r)
                    on_result(r)
        finally:
            try:
                conn.close()
            except Exception:
                pass
        self.post_message(ApplyFinished(results))

    def _record(self, audit: AuditLog, result: FixResult) -> None:
        try:
            audit.record(result)
        except OSError as exc:  # the fix already happened: say so loudly, do not lose the result
            self.call_from_thread(self.notify, f"audit log not written: {exc}", severity="error")

    def on_apply_progress(self, message: ApplyProgress) -> None:
        self.last_results.append(message.result)
        if self._results_screen is not None:
            self._results_screen.add(message.result)

    def on_apply_finished(self, message: ApplyFinished) -> None:
        self.applying = False
        results = message.results
        if self._results_screen is not None:
            self._results_screen.finish()
        self.apply_count += 1
        fixed_oids = {r.plan.sequence.oid for r in results if r.ok}
        self.rates.forget(r.plan.sequence.oid for r in results if r.outcome == FIXED)
        if not self.live_screen:
            return
        for key in [k for k in self.selected if self.verdicts[k].sequence is not None
                    and self.verdicts[k].sequence.oid in fixed_oids]:
            self.selected.discard(key)
            self._set_sel_cell(key)
        failed = [r for r in results if not r.ok]
        if failed:
            self.notify("; ".join(f"{r.plan.sequence.display_name}: {r.reason}" for r in failed),
                        title=f"{len(failed)} of {len(results)} not fixed", severity="error", timeout=10)
        else:
            fixed = sum(1 for r in results if r.outcome == FIXED)
            self.notify(f"{fixed} fixed, {len(results) - fixed} already fine.", title="Repair done")
        self.start_refresh(full=True)  # show the new state at once (a setval moves no write counter)

    # -- copy -----------------------------------------------------------------------------------

    def _copy(self, title: str, text: str, note: str = "") -> None:
        text = gate(text)  # the clipboard is output too, as `seqtui sql` is
        self.copy_to_clipboard(text)
        self.push_screen(CopyScreen(title, text, note))

    def action_copy_oneliners(self) -> None:
        chosen = self.chosen()
        if not chosen or self.report is None:
            self.notify("Nothing under the cursor.", severity="warning")
            return
        oids = {v.sequence.oid for v in chosen if v.sequence is not None}
        # include_all: a row that is fine now still gets its (idempotent, forward-only) statement.
        plans = plans_from_verdicts(self._rows_of_sequences(oids), include_all=True)
        runnable = [p for p in plans if p.fixable]
        if not runnable:
            reasons = "; ".join(describe(p) for p in plans) or "no comparable, readable column draws from it"
            self.notify(f"No psql one-liner for this: {reasons}", severity="warning")
            return
        # One command per line and no comments: zsh treats a pasted `# ...` line as a command.
        text = "\n".join(oneliner(p, self.lock_timeout, statement_timeout=self.statement_timeout) for p in runnable) + "\n"
        note = "\n".join(describe(p) for p in plans)
        self._copy(f"psql one-liner{'s' if len(runnable) != 1 else ''} (run with $DATABASE_URL set)", text, note)

    def action_copy_script(self) -> None:
        if self.report is None:
            self.notify("No scan yet.", severity="warning")
            return
        plans = plans_from_verdicts(self.report.verdicts)
        db = self.report.database
        text = script(plans, self.lock_timeout, statement_timeout=self.statement_timeout,
                      header=f"seqtui: sequences behind their data in database {db.get('name')}\n"
                             "Run with: psql \"$DATABASE_URL\" -f THIS_FILE")
        self._copy(f"SQL script: {len(plans)} sequence{'s' if len(plans) != 1 else ''} behind", text)

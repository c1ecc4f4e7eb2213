"""The key bar, rebuilt once for a burst of binding changes instead of once per change."""

from __future__ import annotations

from textual.widgets import Footer


class KeyFooter(Footer):
    """Textual's Footer rebuilds all its keys (a recompose: ~20 ms of widgets and styles) after every
    bindings signal, and a start sends four of them within 50 ms (mount, focus, the first rows...),
    while the first scan needs the CPU. This one schedules one rebuild and lets the signals that come
    before it runs share it: the rebuild reads the bindings as they are by then. It leans on Footer's
    bindings_changed (pyproject.toml bounds textual to the major version the tests run against)."""

    _rebuild_due = False

    def bindings_changed(self, screen) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen and not self._rebuild_due:
            self._rebuild_due = True
            self.call_after_refresh(self._rebuild)

    async def _rebuild(self) -> None:
        self._rebuild_due = False
        await self.recompose()

"""The key bar, rebuilt once for a burst of binding changes instead of once per change."""

from __future__ import annotations

from textual.widgets import Footer


class KeyFooter(Footer):
    """Textual's Footer rebuilds all its keys (a recompose: ~20 ms of widgets and styles) after every
    bindings signal, and a start sends four of them within 50 ms (mount, focus, the first rows...),
    while the first scan needs the CPU. This one schedules one rebuild and lets the signals that come
    before it runs share it: the rebuild reads the bindings as they are by then.

    The signals are taken as they are sent (an immediate subscription). Footer's own subscription
    queues each one as a message of the footer, and the screen could repaint, running the rebuild,
    between two of a burst's messages: a second rebuild for nothing. It leans on Footer's internals
    (pyproject.toml bounds textual to the major version the tests run against)."""

    _rebuild_due = False

    def on_mount(self) -> None:  # Textual runs Footer.on_mount too: its queued subscription stays
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_signal, immediate=True)

    def bindings_changed(self, screen) -> None:
        """Footer's queued subscription: _bindings_signal() has seen the same signal already."""

    def _bindings_signal(self, screen) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen and not self._rebuild_due:
            self._rebuild_due = True
            # from the footer's own message queue, as Footer does it: a recompose binds the keys'
            # data to the widget whose turn it is
            self.call_next(self.call_after_refresh, self._rebuild)

    async def _rebuild(self) -> None:
        self._rebuild_due = False
        await self.recompose()

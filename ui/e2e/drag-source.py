#!/usr/bin/python3
"""A drag source for the real-window tests (ui/e2e/app.test.mjs): a small GTK 3 window at X, Y
that offers the files and folders named after them as a file manager does (text/uri-list), so
that xdotool can drag them onto the app as a person would. Prints "ready" once the window is on
the screen and quits a moment after the drag ends.

    /usr/bin/python3 drag-source.py X Y PATH...

Needs Debian's python3-gi and gir1.2-gtk-3.0 (the test is skipped without them).
"""
import sys

import gi

gi.require_version("Gdk", "3.0")
gi.require_version("Gtk", "3.0")
from gi.repository import Gdk, GLib, Gtk  # noqa: E402

x, y = int(sys.argv[1]), int(sys.argv[2])
uris = [GLib.filename_to_uri(path, None) for path in sys.argv[3:]]

window = Gtk.Window(title="memreader-drag-source")
window.set_default_size(160, 100)
window.move(x, y)
source = Gtk.EventBox()
source.add(Gtk.Label(label="\n".join(GLib.path_get_basename(p) for p in sys.argv[3:])))
window.add(source)
source.drag_source_set(
    Gdk.ModifierType.BUTTON1_MASK,
    [Gtk.TargetEntry.new("text/uri-list", 0, 0)],
    Gdk.DragAction.COPY,
)
source.connect("drag-data-get", lambda _w, _c, data, _i, _t: data.set_uris(uris))
source.connect("drag-end", lambda *_: GLib.timeout_add(500, Gtk.main_quit))
window.connect("destroy", Gtk.main_quit)
window.connect("map-event", lambda *_: print("ready", flush=True))
window.show_all()
Gtk.main()

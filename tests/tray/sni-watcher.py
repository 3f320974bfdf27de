#!/usr/bin/python3
"""A minimal StatusNotifierWatcher (the freedesktop/KDE tray host protocol) for headless tests.

It owns org.kde.StatusNotifierWatcher on the session bus and accepts RegisterStatusNotifierItem,
which is all an app needs to export its tray icon and menu over D-Bus; each registration is
appended to the file named by argv[1] as "<sender> <argument>". Run with Debian's python3
(it needs python3-dbus and python3-gi)."""
import sys

import dbus
import dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

IFACE = "org.kde.StatusNotifierWatcher"


class Watcher(dbus.service.Object):
    def __init__(self, bus, out):
        super().__init__(bus, "/StatusNotifierWatcher")
        self.items = []
        self.out = out

    @dbus.service.method(IFACE, in_signature="s", sender_keyword="sender")
    def RegisterStatusNotifierItem(self, service, sender=None):
        self.items.append(service)
        with open(self.out, "a", encoding="utf-8") as f:
            f.write(f"{sender} {service}\n")
        self.StatusNotifierItemRegistered(service)

    @dbus.service.method(IFACE, in_signature="s")
    def RegisterStatusNotifierHost(self, service):
        pass

    @dbus.service.signal(IFACE, signature="s")
    def StatusNotifierItemRegistered(self, service):
        pass

    @dbus.service.method(dbus.PROPERTIES_IFACE, in_signature="ss", out_signature="v")
    def Get(self, interface, prop):
        return self.GetAll(interface)[prop]

    @dbus.service.method(dbus.PROPERTIES_IFACE, in_signature="s", out_signature="a{sv}")
    def GetAll(self, interface):
        return {
            "RegisteredStatusNotifierItems": dbus.Array(self.items, signature="s"),
            "IsStatusNotifierHostRegistered": True,
            "ProtocolVersion": 0,
        }


def main():
    DBusGMainLoop(set_as_default=True)
    bus = dbus.SessionBus()
    name = dbus.service.BusName(IFACE, bus)
    Watcher(bus, sys.argv[1])
    print("watcher ready", flush=True)
    _ = name
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()

"""The vng command line built from a typed spec."""

from pathlib import Path

from knit.vngcmd import VngSpec, build


def test_tcg_spec_with_channel_and_rwdir():
    argv = build(VngSpec(image=Path("/k/boot/vmlinuz-6.12"), command=["python3", "-m", "a b"],
                         accel="tcg", rwdirs=(Path("/art"),), chardev_socket=Path("/s/c.sock")))
    assert argv[:4] == ["vng", "--verbose", "--run", "/k/boot/vmlinuz-6.12"]
    assert "--disable-kvm" in argv and "--force-9p" in argv and "--rwdir=/art" in argv
    qemu = next(a for a in argv if a.startswith("--qemu-opts="))
    assert "socket,id=knit0,path=/s/c.sock,server=on,wait=off" in qemu
    assert "virtserialport,chardev=knit0,name=knit.0" in qemu
    assert argv[-2:] == ["--", "python3 -m 'a b'"]


def test_kvm_spec_does_not_disable_kvm():
    assert "--disable-kvm" not in build(VngSpec(image=Path("/k"), command=["true"], accel="kvm"))


def test_gdb_spec_opens_the_stub_on_loopback_and_disables_kaslr():
    argv = build(VngSpec(image=Path("/k"), command=["true"], gdb_port=1234))
    assert "--append=nokaslr" in argv
    assert "-gdb tcp:127.0.0.1:1234" in next(a for a in argv if a.startswith("--qemu-opts="))


def test_tcg_runs_single_threaded():
    qemu = next(a for a in build(VngSpec(image=Path("/k"), command=["true"], accel="tcg"))
                if a.startswith("--qemu-opts="))
    assert "-accel tcg,thread=single" in qemu


def test_wire_nics_are_dgram_netdevs_on_unix_sockets():
    from knit.vngcmd import WireNic
    nic = WireNic("02:6b:6e:00:0a:00", Path("/t/a0"), Path("/t/b0"))
    qemu = next(a for a in build(VngSpec(image=Path("/k"), command=["true"], nics=(nic,)))
                if a.startswith("--qemu-opts="))
    assert ("-netdev dgram,id=kw0,local.type=unix,local.path=/t/a0,remote.type=unix,"
            "remote.path=/t/b0 -device virtio-net-pci,netdev=kw0,mac=02:6b:6e:00:0a:00") in qemu


def test_tcg_cpu_has_no_la57_and_kvm_keeps_vngs_cpu():
    def qemu(accel):
        argv = build(VngSpec(image=Path("/k"), command=["true"], accel=accel))
        return next((a for a in argv if a.startswith("--qemu-opts=")), "")
    assert "-cpu max,la57=off" in qemu("tcg")
    assert "-cpu" not in qemu("kvm")

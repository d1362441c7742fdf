"""The sandbox itself: what a process inside can see, change and reach, and that nothing it starts survives it."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from mcp_servers.core import sandbox
from mcp_servers.core.errors import OvernightError

from ..support.procs import processes_mentioning


def _run(code: str, tmp_path: Path, *, write: tuple[Path, ...] = (), hide: tuple[Path, ...] = (),
         timeout: float = 60, env: dict[str, str] | None = None) -> tuple[int, str]:  # fmt: skip
    done = sandbox.run([sys.executable, "-c", code], mode="bwrap", cwd=write[0] if write else Path("/"),
                       write=write, hide=(*sandbox.person_paths(os.environ), *hide),
                       env=env or sandbox.clean_env(os.environ), timeout=timeout)  # fmt: skip
    return done.returncode, (done.text() + done.stderr.decode()).strip()


def test_sandbox_works_on_this_machine() -> None:
    assert sandbox.problem() is None


def test_sandbox_hides_the_person_and_lets_write_only_what_it_was_given(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".bashrc").write_text("# the person's shell\n")
    secret = tmp_path / "checkout" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("the person's file\n")
    work = tmp_path / "work"
    work.mkdir()
    code = (
        "import os, pathlib\n"
        f"print(os.path.exists({str(secret)!r}), os.listdir({str(home)!r}) if os.path.isdir({str(home)!r}) else [])\n"
        f"pathlib.Path({str(work / 'made.txt')!r}).write_text('ok')\n"
        "for target in ['/etc/planted', " + repr(str(secret)) + ", " + repr(sys.prefix + "/planted.pth") + "]:\n"
        "    try:\n"
        "        open(target, 'w').write('x')\n"
        "        print('WROTE', target)\n"
        "    except OSError as e:\n"
        "        print('refused', type(e).__name__)\n"
    )
    rc, out = _run(code, tmp_path, write=(work,), hide=(secret.parent, home))
    assert rc == 0, out
    assert out.splitlines()[0] == "False []"
    assert "WROTE" not in out and out.count("refused") == 3
    assert (work / "made.txt").read_text() == "ok"
    assert secret.read_text() == "the person's file\n" and not Path(sys.prefix, "planted.pth").exists()


def test_sandbox_drops_capabilities_even_for_root(tmp_path: Path) -> None:
    code = (
        "import subprocess\n"
        "print(open('/proc/self/status').read().split('CapEff:')[1].split()[0])\n"
        "print(subprocess.run(['mount', '-o', 'remount,rw', '/'], capture_output=True).returncode)\n"
    )
    rc, out = _run(code, tmp_path)
    assert rc == 0, out
    cap, remount = out.splitlines()
    assert int(cap, 16) == 0 and remount != "0"


def test_sandbox_has_no_network_not_even_the_hosts_loopback(tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    code = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
        "    print('CONNECTED')\n"
        "except OSError as e:\n"
        "    print('refused', e)\n"
    )
    try:
        rc, out = _run(code, tmp_path)
    finally:
        server.close()
    assert rc == 0 and out.startswith("refused"), out


def test_sandbox_ends_every_process_it_started_even_detached_ones(tmp_path: Path) -> None:
    marker = f"overnight-sandbox-daemon-{os.getpid()}"
    code = (
        "import subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)  # {marker}'], start_new_session=True,"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print('started')\n"
    )
    rc, out = _run(code, tmp_path)
    assert rc == 0 and out == "started", out
    for _ in range(50):
        if not processes_mentioning(marker):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"a detached process outlived its sandbox: {processes_mentioning(marker)}")


def test_sandbox_environment_carries_no_credentials() -> None:
    env = sandbox.clean_env({"PATH": "/usr/bin", "ANTHROPIC_API_KEY": "k", "AWS_SECRET_ACCESS_KEY": "s",
                             "GITHUB_TOKEN": "t", "LC_ALL": "C", "OVERNIGHT_TASK_ID": "t1"})  # fmt: skip
    assert env == {"PATH": "/usr/bin", "LC_ALL": "C", "OVERNIGHT_TASK_ID": "t1", "HOME": "/tmp", "TMPDIR": "/tmp"}


def test_sandbox_missing_command_says_so(tmp_path: Path) -> None:
    with pytest.raises(OvernightError, match="`no-such-command-here` was not found"):
        sandbox.run(["no-such-command-here"], mode="bwrap", cwd=tmp_path, write=(tmp_path,), hide=(),
                    env=sandbox.clean_env(os.environ), timeout=30)  # fmt: skip


def test_sandbox_without_bwrap_fails_closed(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path)}  # no bwrap there
    assert sandbox.problem(env) is not None and "not installed" in str(sandbox.problem(env))
    assert 'sandbox = "off"' in str(sandbox.problem(env))


def test_sandbox_mounts_shown_folders_inside_hidden_ones_and_hides_inside_shown_ones(tmp_path: Path) -> None:
    (tmp_path / "a" / "w" / "h").mkdir(parents=True)
    argv = sandbox.command(sandbox.Box(write=(tmp_path / "a" / "w",), hide=(tmp_path / "a", tmp_path / "a" / "w" / "h"),
                                       read=(tmp_path,)), ["true"])  # fmt: skip
    mounts = [(argv[i], argv[i + 1]) for i in range(len(argv) - 1) if argv[i] in {"--tmpfs", "--bind", "--ro-bind"}]
    order = [m for m in mounts if m[1].startswith(str(tmp_path))]
    assert order == [("--ro-bind", str(tmp_path)), ("--tmpfs", str(tmp_path / "a")),
                     ("--bind", str(tmp_path / "a" / "w")), ("--tmpfs", str(tmp_path / "a" / "w" / "h"))]  # fmt: skip
    assert argv[argv.index("--") - 4:argv.index("--")] == ["--remount-ro", str(tmp_path / "a"), "--remount-ro",
                                                            str(tmp_path / "a" / "w" / "h")]  # fmt: skip


def test_sandbox_shows_a_folder_at_another_path_over_a_hidden_checkout(tmp_path: Path) -> None:
    """The judged tree (an export) appears at the checkout's path; nothing of the checkout shows through, and a
    folder shown read-only inside it (the project's .venv) cannot be written."""
    checkout = tmp_path / "checkout"
    (checkout / ".git").mkdir(parents=True)
    (checkout / ".git" / "config").write_text("the person's git config\n")
    (checkout / "mine.txt").write_text("the person's file\n")
    (checkout / ".venv").mkdir()
    (checkout / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    export = tmp_path / "export"
    export.mkdir()
    (export / "judged.txt").write_text("judged\n")
    code = (
        "import os\n"
        "print(sorted(os.listdir('.')), os.getcwd())\n"
        "print(os.path.exists('mine.txt'), os.path.exists('.git/config'))\n"
        "print(open('.venv/pyvenv.cfg').read().strip())\n"
        "open('new.txt', 'w').write('x')\n"
        "try:\n    open('.venv/planted', 'w')\n    print('venv written')\n"
        "except OSError:\n    print('venv read-only')\n"
    )
    done = sandbox.run([sys.executable, "-c", code], mode="bwrap", cwd=export, write=(), read=(checkout / ".venv",),
                       hide=(*sandbox.person_paths(os.environ), checkout, checkout / ".git"), shown_at=checkout,
                       env=sandbox.clean_env(os.environ), timeout=60)  # fmt: skip
    out = done.text()
    assert done.returncode == 0, out + done.stderr.decode()
    assert f"'.venv', 'judged.txt'] {checkout}" in out
    assert "False False" in out and "home = /usr/bin" in out and "venv read-only" in out
    assert (export / "new.txt").exists() and not (checkout / "new.txt").exists()
    assert not (checkout / ".venv" / "planted").exists()
    assert sorted(p.name for p in checkout.iterdir()) == [".git", ".venv", "mine.txt"]

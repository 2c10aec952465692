"""The hostile corpus: programs that try to escape, starve or fool the sandbox, with the verdicts they must get.

Placeholders filled in by the test: @TOKEN@ (a fresh secret), @HOME_CANARY@ (a file in the host's home holding the
token), @PROJECT_FILE@ (a file of this repository), @PORT@ (a host TCP listener), @ABSTRACT@ (a host abstract
unix socket), @HOST_TMP@ / @HOST_PROJECT_OUT@ (host paths that must not appear), @SITE@ (the interpreter's
site-packages).
"""

from __future__ import annotations

from dataclasses import dataclass

OK, WA, TLE, WALL, MLE, RTE, OLE = ("OK", "WRONG_ANSWER", "TIME_LIMIT", "WALL_TIMEOUT", "MEMORY_LIMIT",
                                    "RUNTIME_ERROR", "OUTPUT_LIMIT")
NOT_OK = {WA, TLE, WALL, MLE, RTE, OLE, "COMPILE_ERROR"}


@dataclass(frozen=True)
class Hostile:
    name: str
    code: str
    verdicts: frozenset
    language: str = "python"
    must_not_print: tuple = ()  # placeholders whose values must not appear in stdout/stderr
    host_paths_absent: tuple = ()  # placeholders of host paths that must not exist afterwards
    function: bool = False  # judged as a function test of `add` (a wrong candidate that tries to cheat)
    stdout_truncated: bool = False
    stderr_truncated: bool = False


def H(name, code, verdicts, **kw) -> Hostile:
    if isinstance(verdicts, str):
        verdicts = {verdicts}
    return Hostile(name, code, frozenset(verdicts), **kw)


CORPUS = [
    # ---------------------------------------------------------------- CPU, memory, processes, output, disk
    H("infinite_loop", "while True:\n    pass\n", TLE),
    H("busy_threads", "import threading\n\ndef spin():\n    while True:\n        pass\n\n"
      "for _ in range(4):\n    threading.Thread(target=spin, daemon=True).start()\nspin()\n", TLE),
    H("sleep_forever", "import time\ntime.sleep(10**6)\n", WALL),
    H("block_on_pipe", "import os\nr, w = os.pipe()\nos.read(r, 1)\n", WALL),
    H("memory_bomb", "x = bytearray(1 << 30)\n", MLE),
    H("memory_creep", "chunks = []\nwhile True:\n    chunks.append(bytearray(8 << 20))\n", MLE),
    H("fork_bomb", "import os\nwhile True:\n    os.fork()\n", {RTE, TLE}),
    H("fork_bomb_resilient", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
      TLE),
    H("spawn_many_sleepers", "import subprocess\nprocs = [subprocess.Popen(['sleep', '1000']) for _ in range(100)]\n",
      RTE),
    H("huge_stdout", "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", OLE, stdout_truncated=True),
    H("huge_stderr", "import sys\nwhile True:\n    sys.stderr.write('e' * 65536)\n", OLE, stderr_truncated=True),
    H("huge_single_line", "print('y' * (64 << 20))\n", OLE, stdout_truncated=True),
    H("deep_recursion_unbounded", "import sys\nsys.setrecursionlimit(10**8)\n\ndef f(n):\n    return f(n + 1) + 1\n\n"
      "f(0)\n", {TLE, MLE, RTE}),
    H("deep_recursion_default", "def f(n):\n    return f(n + 1)\n\nf(0)\n", RTE),
    H("fill_workdir_one_file", "with open('big', 'wb') as f:\n    while True:\n        f.write(b'x' * (1 << 20))\n",
      RTE),
    H("fill_tmp_many_files", "i = 0\nwhile True:\n    with open(f'/tmp/f{i}', 'wb') as f:\n"
      "        f.write(b'x' * (4 << 20))\n    i += 1\n", RTE),
    H("fill_dev_shm", "i = 0\nwhile True:\n    with open(f'/dev/shm/f{i}', 'wb') as f:\n"
      "        f.write(b'x' * (4 << 20))\n    i += 1\n", RTE),
    H("exhaust_file_descriptors", "files = [open('/dev/null') for _ in range(100000)]\n", RTE),
    # ---------------------------------------------------------------- reading and writing the host
    H("read_etc_shadow", "print(open('/etc/shadow').read())\nprint(open('/etc/gshadow').read())\n", {OK, RTE},
      must_not_print=("root:",)),
    H("read_project_file", "print(open('@PROJECT_FILE@').read())\n", RTE, must_not_print=("[build-system]",)),
    H("read_home_canary", "print(open('@HOME_CANARY@').read())\n", RTE, must_not_print=("@TOKEN@",)),
    H("list_home_and_work", "import os\nprint(os.listdir('/root'))\nprint(os.listdir('/work'))\n", RTE,
      must_not_print=("qwq-canary",)),
    H("walk_whole_filesystem", "import os\nfor root, dirs, files in os.walk('/'):\n"
      "    dirs[:] = [d for d in dirs if d not in ('proc', 'sys')]\n    for f in files:\n"
      "        if 'qwq-canary' in f or f == 'hostile_programs.py':\n            print(os.path.join(root, f))\n",
      # I/O-bound: on a loaded host the walk can sit idle past the wall guard; what matters is that nothing leaks
      {OK, TLE, WALL}, must_not_print=("qwq-canary", "hostile_programs.py")),
    H("environment_secrets", "import os\nprint(dict(os.environ))\ntry:\n    print(open('/proc/1/environ').read())\n"
      "except OSError as e:\n    print('denied', e)\n", OK, must_not_print=("@TOKEN@",)),
    H("write_etc", "open('/etc/qwq-evil', 'w').write('x')\n", RTE),
    H("write_host_tmp", "open('@HOST_TMP@', 'w').write('escaped')\nprint('wrote inside')\n", OK,
      host_paths_absent=("@HOST_TMP@",)),
    H("write_project_dir", "open('@HOST_PROJECT_OUT@', 'w').write('escaped')\n", RTE,
      host_paths_absent=("@HOST_PROJECT_OUT@",)),
    H("write_site_packages", "open('@SITE@/qwq_evil.py', 'w').write('x')\n", RTE),
    H("become_root", "import os\nos.setuid(0)\n", RTE),
    H("setuid_binary", "import subprocess\nout = subprocess.run(['su', '-c', 'id -u'], capture_output=True, "
      "text=True, input='')\nprint(out.stdout, out.stderr)\nassert out.stdout.strip() != '0'\n", {OK, RTE},
      must_not_print=("uid=0",)),
    H("chroot_escape", "import os\nos.mkdir('x')\nos.chroot('x')\n", RTE),
    H("mount_attempt", "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
      "r = libc.mount(b'none', b'/sandbox', b'tmpfs', 0, None)\nassert r == 0, ctypes.get_errno()\n", RTE),
    # ---------------------------------------------------------------- network
    H("connect_host_loopback", "import socket\nsocket.create_connection(('127.0.0.1', @PORT@), timeout=2)\n", RTE),
    H("connect_outside", "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)\n", RTE),
    H("dns_lookup", "import socket\nprint(socket.getaddrinfo('example.com', 80))\n", RTE),
    H("udp_send_outside", "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
      "s.sendto(b'x', ('8.8.8.8', 53))\n", RTE),
    H("abstract_unix_socket", "import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect('\\0@ABSTRACT@')\n", RTE),
    # ---------------------------------------------------------------- signals, daemons, the supervisor
    H("kill_parent", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n", RTE),
    H("kill_everything", "import os, signal\nos.kill(-1, signal.SIGKILL)\n", RTE),
    H("kill_process_group", "import os, signal\nos.killpg(0, signal.SIGKILL)\n", RTE),
    H("kill_every_pid", "import os, signal\nfor pid in range(1, 4000):\n    if pid != os.getpid():\n"
      "        try:\n            os.kill(pid, signal.SIGKILL)\n        except OSError:\n            pass\n"
      "print('still here')\n", OK),
    H("read_supervisor_memory", "print(open('/proc/1/mem', 'rb').read(16))\n", RTE, must_not_print=("@TOKEN@",)),
    H("daemon_outlives_run", "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
      "        time.sleep(1000)\n    os._exit(0)\nprint('parent done')\n", OK),
    H("daemon_keeps_writing", "import os, time\nif os.fork() == 0:\n    os.setsid()\n    while True:\n"
      "        print('daemon', flush=True)\n        time.sleep(0.01)\nprint('parent done')\n", {OK}),
    # ---------------------------------------------------------------- C++ and JavaScript
    H("cpp_infinite_loop", "int main(){volatile unsigned long x=0; for(;;) x++;}\n", TLE, language="cpp"),
    H("cpp_fork_bomb", "#include <unistd.h>\nint main(){for(;;) fork();}\n", {TLE, RTE}, language="cpp"),
    H("cpp_memory_bomb", "#include <vector>\n#include <cstdio>\nint main(){std::vector<long> v(1L<<30, 1); "
      "printf(\"%ld\\n\", v[12345]);}\n", MLE, language="cpp"),
    H("cpp_stack_overflow", "int f(int n){volatile char pad[4096]; pad[0]=n; return f(n+1)+pad[0];}\n"
      "int main(){return f(0);}\n", RTE, language="cpp"),
    H("cpp_read_shadow", "#include <fstream>\n#include <iostream>\nint main(){std::ifstream f(\"/etc/shadow\"); "
      "std::cout << f.rdbuf(); return 0;}\n", {OK, RTE}, language="cpp", must_not_print=("root:",)),
    H("js_infinite_loop", "for(;;){}\n", TLE, language="js"),
    H("js_memory_bomb", "const a=[]; for(;;) a.push(new Array(1e6).fill(1));\n", MLE, language="js"),
    H("js_read_project", "console.log(require('fs').readFileSync('@PROJECT_FILE@','utf8'))\n", RTE, language="js",
      must_not_print=("[build-system]",)),
    # ---------------------------------------------------------------- faking a function-test pass (`add` is wrong)
    H("fn_exit0_at_import", "import sys\nsys.exit(0)\ndef add(a, b):\n    return 0\n", NOT_OK, function=True),
    H("fn_os_exit0_in_call", "import os\ndef add(a, b):\n    os._exit(0)\n", NOT_OK, function=True),
    H("fn_sys_exit_in_call", "import sys\ndef add(a, b):\n    sys.exit(0)\n", NOT_OK, function=True),
    H("fn_quit_in_call", "def add(a, b):\n    quit()\n", NOT_OK, function=True),
    H("fn_raise_keyboard_interrupt", "def add(a, b):\n    raise KeyboardInterrupt\n", NOT_OK, function=True),
    H("fn_thread_exits_later", "import os, threading, time\nthreading.Thread(target=lambda: (time.sleep(0.05), "
      "os._exit(0))).start()\ndef add(a, b):\n    time.sleep(0.5)\n    return 0\n", NOT_OK, function=True),
    H("fn_override_builtins", "import builtins\nbuiltins.abs = lambda x: 0\nbuiltins.isinstance = lambda *a: True\n"
      "builtins.AssertionError = type('Never', (Exception,), {})\nbuiltins.len = lambda x: 0\n"
      "def add(a, b):\n    return 0\n", NOT_OK, function=True),
    H("fn_always_equal_object", "class Yes:\n    def __eq__(self, other):\n        return True\n"
      "    def __sub__(self, other):\n        return 0\n    __abs__ = lambda self: 0\n    __lt__ = __eq__\n"
      "def add(a, b):\n    return Yes()\n", NOT_OK, function=True),
    H("fn_int_subclass_lies", "class Liar(int):\n    def __eq__(self, other):\n        return True\n"
      "def add(a, b):\n    return Liar(0)\n", NOT_OK, function=True),
    H("fn_read_the_tests", "src = open('/judge/tests.py').read()\ndef add(a, b):\n    return 0\n", NOT_OK,
      function=True),
    H("fn_forge_checker_report", "import os\nfor fd in range(3, 20):\n    try:\n"
      "        os.write(fd, b'{\"case\": 0, \"verdict\": \"OK\"}\\n{\"done\": \"0\"}\\n')\n    except OSError:\n"
      "        pass\ndef add(a, b):\n    return 0\n", NOT_OK, function=True),
    H("fn_forge_replies_ahead", "import os, json\nfor v in (3, 12, 0.75, 0):\n"
      "    os.write(4, (json.dumps({'value': ['i', '0']}) + '\\n').encode())\ndef add(a, b):\n    return 0\n",
      NOT_OK, function=True),
    H("fn_kill_the_checker", "import os, signal\nfor pid in range(1, 200):\n    if pid != os.getpid():\n        try:\n"
      "            os.kill(pid, signal.SIGKILL)\n        except OSError:\n            pass\n"
      "def add(a, b):\n    return 0\n", NOT_OK, function=True),
    H("fn_print_pass_markers", "print('OK'); print('{\"done\": \"x\"}'); print('passed')\n"
      "def add(a, b):\n    return 0\n", NOT_OK, function=True),
    H("fn_patch_harness", "import sys\nmain = sys.modules['__main__']\nmain.encode = lambda *a, **k: ['i', '3']\n"
      "def add(a, b):\n    return 0\n", NOT_OK, function=True),
]

ADD_TESTS = """
def check(candidate):
    assert candidate(1, 2) == 3
    assert candidate(5, 7) == 12
    assert abs(candidate(0.5, 0.25) - 0.75) < 1e-9
    assert isinstance(candidate(1, 1), int)
    assert len(str(candidate(10, 10))) == 2
"""

"""featviz.doctor(): each check reports what it finds, and a broken setup gets the fix."""
from __future__ import annotations

import os
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import featviz
from featviz import _assets, data, selfcheck
from featviz._assets import pretty_path
from featviz.selfcheck import FAIL, OK, WARN, Check, Report, ServerInfo


@pytest.fixture
def manager_dir(tmp_path) -> Path:
    """A labextensions folder holding the widget manager, as jupyterlab_widgets installs it."""
    root = tmp_path / "labextensions"
    ext = root / "@jupyter-widgets" / "jupyterlab-manager"
    ext.mkdir(parents=True)
    (ext / "package.json").write_text('{"name": "@jupyter-widgets/jupyterlab-manager"}')
    return root


@pytest.fixture
def healthy_widgets(monkeypatch, manager_dir):
    """This environment as a working JupyterLab + ipywidgets 8 install, outside any kernel."""
    versions = {"ipywidgets": "8.1.5", "jupyterlab_widgets": "3.0.13"}
    monkeypatch.setattr(selfcheck, "_version", lambda d: versions.get(d, "9.9"))
    monkeypatch.setattr(selfcheck, "_importable", lambda m: True)
    monkeypatch.setattr(selfcheck, "_labextension_paths", lambda: [manager_dir])
    monkeypatch.setattr(selfcheck, "_in_kernel", lambda: False)
    return versions


# --------------------------------------------------------------------------- the report

def test_doctor_runs_every_check_and_prints_the_report(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("FEATVIZ_DATA_ROOT", str(tmp_path))     # no full MNIST there
    monkeypatch.setenv("FEATVIZ_OFFLINE", "1")
    report = featviz.doctor()
    out = capsys.readouterr().out
    assert report.names == ["python", "featviz", "torch", "torchvision", "numpy", "matplotlib",
                            "ipywidgets", "jupyterlab", "widgets", "anywidget", "device", "data",
                            "checkpoints", "imagenet"]
    assert out.strip() == str(report).strip()
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in report["python"].detail
    assert report["torch"].detail == torch.__version__ and report["torch"].status == OK
    assert report["featviz"].detail.startswith(featviz.__version__)
    # the tests run offline on the bundled sample: that is a warning with its fix, not a failure
    assert report["data"].status == WARN and "FEATVIZ_OFFLINE" in report["data"].fix
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty PyTorch hub cache
    imagenet = featviz.doctor(show=False)["imagenet"]
    assert imagenet.status == WARN and "featviz.imagenet_model()" in imagenet.fix


def test_doctor_show_false_prints_nothing(capsys):
    report = featviz.doctor(show=False)
    assert capsys.readouterr().out == "" and len(report) == 14


def test_report_text_has_each_fix_under_its_check():
    report = Report([
        Check("torch", OK, "2.5.0"),
        Check("widgets", FAIL, "no frontend", "`python -m pip install jupyterlab_widgets`"),
        Check("data", WARN, "the sample", "download it"),
    ])
    lines = str(report).splitlines()
    assert lines[0] == "featviz doctor"
    fail = next(i for i, line in enumerate(lines) if "[FAIL] widgets" in line)
    assert "fix: `python -m pip install jupyterlab_widgets`" in lines[fail + 1]
    assert "1 ok, 1 warning, 1 failed" in lines[-1]
    assert report.ok is False
    assert [c.name for c in report.problems] == ["widgets", "data"]   # failures first
    assert Report([Check("a", OK, "x"), Check("b", WARN, "y", "z")]).ok is True


def test_long_commands_are_never_broken_across_lines():
    cmd = "`/a/very/long/path/to/some/environment/bin/python -m pip install jupyterlab_widgets`"
    text = str(Report([Check("widgets", FAIL, "x " * 60, "install it: " + cmd + " then restart")]))
    assert cmd in text


def test_report_html_escapes_and_marks_status():
    report = Report([Check("widgets", FAIL, "a <b> tag", "run `pip install x`"),
                     Check("device", OK, "CPU")])
    page = report._repr_html_()
    assert "a &lt;b&gt; tag" in page and "<code>pip install x</code>" in page
    assert "\u274c" in page and "\u2705" in page and "fix:" in page


def test_report_lookup_by_name_lists_the_names_when_wrong():
    report = Report([Check("device", OK, "CPU")])
    assert report["device"].detail == "CPU" and report[0].name == "device"
    with pytest.raises(KeyError, match="device"):
        report["gpu"]


def test_a_bad_status_is_refused():
    with pytest.raises(ValueError, match="warn"):
        Check("x", "maybe", "y")


def test_a_check_that_crashes_becomes_a_failed_line(monkeypatch):
    def broken() -> Check:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(selfcheck, "_check_device", broken)
    report = featviz.doctor(show=False)
    assert report["device"].status == FAIL
    assert "disk on fire" in report["device"].detail and "reinstall" in report["device"].fix


def test_in_a_kernel_the_report_is_shown_once_per_cell(monkeypatch):
    shown = []
    shell = SimpleNamespace(execution_count=7)
    monkeypatch.setattr(selfcheck, "_ipython_kernel_shell", lambda: shell)
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    report = featviz.doctor()
    assert len(shown) == 1 and set(shown[0]) == {"text/plain", "text/html"}
    report._ipython_display_()          # `featviz.doctor()` as the cell's last line
    assert len(shown) == 1
    shell.execution_count = 8           # the report shown again in a later cell
    report._ipython_display_()
    assert len(shown) == 2


# --------------------------------------------------------------------------- versions

def test_python_too_old_fails_with_the_fix(monkeypatch):
    monkeypatch.setattr(selfcheck, "_python_version", lambda: (3, 9, 18))
    check = selfcheck._check_python()
    assert check.status == FAIL and "3.9.18" in check.detail and "3.10 or newer" in check.fix


def test_missing_package_fails_with_the_pip_command(monkeypatch):
    monkeypatch.setattr(selfcheck, "_version", lambda d: None if d == "torchvision" else "9.0")
    report = featviz.doctor(show=False)
    check = report["torchvision"]
    assert check.status == FAIL and "not installed" in check.detail
    assert f"{pretty_path(sys.executable)} -m pip install torchvision" in check.fix


def test_old_package_warns_with_the_minimum(monkeypatch):
    monkeypatch.setattr(selfcheck, "_version", lambda d: "3.5.1" if d == "matplotlib" else "99.0")
    check = selfcheck._check_package("matplotlib", "figures")
    assert check.status == WARN and "3.5.1" in check.detail
    assert '"matplotlib>=3.7"' in check.fix


# --------------------------------------------------------------------------- widgets

def test_widgets_ok_when_frontend_and_extension_are_there(healthy_widgets, manager_dir):
    check = selfcheck._check_widgets()
    assert check.status == OK and check.fix == ""
    assert "jupyterlab_widgets 3.0.13" in check.detail and pretty_path(manager_dir) in check.detail


def test_missing_jupyterlab_widgets_is_the_intslider_failure(healthy_widgets, monkeypatch):
    healthy_widgets["jupyterlab_widgets"] = None
    monkeypatch.setattr(selfcheck, "_importable", lambda m: m != "jupyterlab_widgets")
    check = selfcheck._check_widgets()
    assert check.status == FAIL
    assert "IntSlider(value=0)" in check.detail and "jupyterlab_widgets is not installed" in check.detail
    assert "pip install jupyterlab_widgets" in check.fix and "restart JupyterLab" in check.fix


def test_missing_labextension_folder_names_where_it_looked(healthy_widgets, monkeypatch, tmp_path):
    monkeypatch.setattr(selfcheck, "_labextension_paths", lambda: [tmp_path / "empty"])
    check = selfcheck._check_widgets()
    assert check.status == FAIL
    assert "@jupyter-widgets/jupyterlab-manager" in check.detail
    assert pretty_path(tmp_path / "empty") in check.detail
    assert "pip install jupyterlab_widgets" in check.fix


def test_mismatched_widget_versions_fail(healthy_widgets):
    healthy_widgets["jupyterlab_widgets"] = "1.1.7"      # the ipywidgets 7 frontend
    check = selfcheck._check_widgets()
    assert check.status == FAIL and "needs jupyterlab_widgets 3.x" in check.detail
    assert "-U ipywidgets jupyterlab_widgets" in check.fix


def test_missing_ipywidgets_fails(healthy_widgets):
    healthy_widgets["ipywidgets"] = None
    check = selfcheck._check_widgets()
    assert check.status == FAIL and "pip install ipywidgets jupyterlab_widgets" in check.fix


def _server_elsewhere(monkeypatch, tmp_path) -> Path:
    """A kernel from this environment, started by a Jupyter server from another one."""
    prefix = tmp_path / "server-env"
    server = ServerInfo(4242, [str(prefix / "bin" / "python"), str(prefix / "bin" / "jupyter-lab")],
                        prefix / "bin" / "python", prefix)
    monkeypatch.setattr(selfcheck, "_in_kernel", lambda: True)
    monkeypatch.setattr(selfcheck, "_kernel_server", lambda: server)
    return prefix


def test_server_in_another_environment_without_frontend_says_where_to_install(
        healthy_widgets, monkeypatch, tmp_path):
    prefix = _server_elsewhere(monkeypatch, tmp_path)
    # the kernel's own environment has the extension; the server's does not
    monkeypatch.setattr(selfcheck, "_labextension_paths",
                        lambda: [Path(sys.prefix) / "share" / "jupyter" / "labextensions"])
    check = selfcheck._check_widgets()
    assert check.status == FAIL and pretty_path(prefix) in check.detail
    assert pretty_path(sys.prefix) in check.detail
    assert f"{pretty_path(prefix / 'bin' / 'python')} -m pip install jupyterlab_widgets" in check.fix
    assert "restart JupyterLab" in check.fix


def test_server_in_another_environment_with_frontend_is_fine(healthy_widgets, monkeypatch, tmp_path):
    prefix = _server_elsewhere(monkeypatch, tmp_path)
    ext = prefix / "share" / "jupyter" / "labextensions" / "@jupyter-widgets" / "jupyterlab-manager"
    ext.mkdir(parents=True)
    (ext / "package.json").write_text("{}")
    monkeypatch.setattr(selfcheck, "_labextension_paths",
                        lambda: [Path(sys.prefix) / "share" / "jupyter" / "labextensions"])
    check = selfcheck._check_widgets()
    assert check.status == OK and pretty_path(ext) in check.detail


def test_jupyterlab_missing_here_is_fine_when_the_server_has_it(healthy_widgets, monkeypatch, tmp_path):
    _server_elsewhere(monkeypatch, tmp_path)
    healthy_widgets["jupyterlab"] = None
    assert selfcheck._check_jupyterlab().status == OK
    monkeypatch.setattr(selfcheck, "_in_kernel", lambda: False)
    check = selfcheck._check_jupyterlab()
    assert check.status == WARN and "pip install jupyterlab" in check.fix


@pytest.mark.parametrize("cmdline, python", [
    (["/opt/conda/bin/python3.11", "/opt/conda/bin/jupyter-lab"], "/opt/conda/bin/python3.11"),
    (["/srv/env/bin/jupyter-lab", "--port=8888"], "/srv/env/bin/python"),
])
def test_kernel_server_reads_the_parents_environment(monkeypatch, cmdline, python):
    monkeypatch.setenv("JPY_PARENT_PID", "4242")
    monkeypatch.setattr(selfcheck, "_process_cmdline", lambda pid: cmdline if pid == 4242 else None)
    server = selfcheck._kernel_server()
    assert server.python == Path(python) and server.prefix == Path(python).parent.parent


def test_kernel_server_of_this_process_is_this_environment(monkeypatch):
    monkeypatch.setenv("JPY_PARENT_PID", str(os.getpid()))
    server = selfcheck._kernel_server()
    if server is None or server.prefix is None:
        pytest.skip("this platform does not show a process's command line")
    assert selfcheck._same_env(server.prefix)


def test_paths_are_shown_as_typed_with_the_home_folder_as_tilde():
    home = Path.home()
    assert pretty_path(home / "course" / ".venv" / "bin" / "python") == "~/course/.venv/bin/python"
    assert pretty_path("/opt/conda/bin/python") == "/opt/conda/bin/python"
    assert pretty_path(home / "my course" / "python") == str(home / "my course" / "python")


def test_no_parent_pid_means_no_server(monkeypatch):
    monkeypatch.delenv("JPY_PARENT_PID", raising=False)
    assert selfcheck._kernel_server() is None


# --------------------------------------------------------------------------- device

def test_device_names_the_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA Test 80GB")
    check = selfcheck._check_device()
    assert check.status == OK and "CUDA: NVIDIA Test 80GB (and 1 more)" in check.detail


def test_device_reports_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert "MPS" in selfcheck._check_device().detail


def test_device_cpu_says_no_gpu_is_needed(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    check = selfcheck._check_device()
    assert check.status == OK and check.detail.startswith("CPU") and f"{os.cpu_count()} cores" in check.detail


# --------------------------------------------------------------------------- data and checkpoints

def test_full_mnist_is_ok(monkeypatch, tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for pair in data._RAW.values():
        for name in pair:
            (raw / name).write_bytes(b"")
    monkeypatch.setenv("FEATVIZ_DATA_ROOT", str(tmp_path))
    check = selfcheck._check_data()
    assert check.status == OK and check.detail.startswith("full MNIST") and tmp_path.name in check.detail


def test_sample_warns_with_the_ways_to_get_the_full_set(monkeypatch, tmp_path):
    monkeypatch.setenv("FEATVIZ_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("FEATVIZ_OFFLINE", "1")
    check = selfcheck._check_data()
    assert check.status == WARN and "bundled MNIST sample" in check.detail
    assert "unset FEATVIZ_OFFLINE" in check.fix and pretty_path(tmp_path / "MNIST" / "raw") in check.fix
    assert "FEATVIZ_DATA_ROOT" in check.fix


def test_sample_online_says_the_first_load_will_download(monkeypatch, tmp_path):
    monkeypatch.setenv("FEATVIZ_DATA_ROOT", str(tmp_path))
    monkeypatch.delenv("FEATVIZ_OFFLINE", raising=False)
    check = selfcheck._check_data()      # must not download: it only reports
    assert check.status == WARN and "tries to download" in check.detail
    assert not (tmp_path / "MNIST").exists()


def test_doctor_leaves_the_sample_announcement_for_the_first_load(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("FEATVIZ_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("FEATVIZ_OFFLINE", "1")
    selfcheck._check_data()
    assert capsys.readouterr().out == ""
    data.data_source()
    assert "using the bundled MNIST sample" in capsys.readouterr().out


def test_damaged_sample_fails_with_restore_command(monkeypatch):
    def corrupt(name):
        raise ValueError(f"The bundled asset {name} is corrupt")

    monkeypatch.setattr(_assets, "verified_asset", corrupt)
    check = selfcheck._check_data()
    assert check.status == FAIL and "damaged" in check.detail and "corrupt" in check.detail
    assert "git checkout -- featviz/assets" in check.fix


def test_missing_checkpoint_fails_with_restore_command(monkeypatch):
    def missing(name):
        raise FileNotFoundError(f"The bundled asset {name} is missing.")

    monkeypatch.setattr(_assets, "verified_asset", missing)
    check = selfcheck._check_checkpoints()
    assert check.status == FAIL and "simplecnn" in check.detail
    assert "git checkout -- featviz/assets" in check.fix


def test_shipped_checkpoints_verify():
    check = selfcheck._check_checkpoints()
    assert check.status == OK, check.detail
    accuracy = featviz.pretrained().featviz_meta["test_accuracy"]
    assert f"{accuracy:.2%}" in check.detail


def test_doctor_paths_false_leaves_out_this_machines_folders_and_cores(monkeypatch, tmp_path):
    monkeypatch.setenv("FEATVIZ_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("FEATVIZ_OFFLINE", "1")
    full, bare = featviz.doctor(show=False), featviz.doctor(show=False, paths=False)
    assert pretty_path(tmp_path / "MNIST" / "raw") in str(full)      # the default shows them
    text = str(bare)
    for folder in (str(tmp_path), sys.prefix, pretty_path(sys.prefix), str(Path.home())):
        assert folder not in text
    assert "cores" not in text and "threads" not in text
    assert bare["python"].detail == ".".join(map(str, sys.version_info[:3]))
    assert bare.names == full.names and [c.status for c in bare] == [c.status for c in full]
    # a fix stays a command that can be run: the kernel's python is called `python`
    bad = selfcheck._without_machine(Check("x", FAIL, "here (/opt/env/bin/python)",
                                           "`/opt/env/bin/python -m pip install ipywidgets`"))
    assert bad.detail == "here" and bad.fix == "`python -m pip install ipywidgets`"


def test_on_colab_the_widget_checks_need_no_jupyterlab(healthy_widgets, monkeypatch):
    """Colab has ipywidgets 7.7 and its own widget manager, and no JupyterLab or labextensions."""
    healthy_widgets["ipywidgets"] = "7.7.1"
    healthy_widgets["jupyterlab"] = None
    monkeypatch.setattr(selfcheck, "_labextension_paths", lambda: [])
    assert selfcheck._check_widgets().status == FAIL          # a local Jupyter would show plain text
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    widgets, jlab = selfcheck._check_widgets(), selfcheck._check_jupyterlab()
    assert widgets.status == OK and "7.7.1 on Colab" in widgets.detail
    assert jlab.status == OK and "Colab" in jlab.detail
    assert selfcheck._check_anywidget().status == OK


def test_ipywidgets_7_is_old_enough():
    assert selfcheck.MINIMUM_VERSIONS["ipywidgets"] == "7.6"


def test_ipywidgets_7_with_the_wrong_frontend_is_fixed_without_leaving_7(healthy_widgets):
    healthy_widgets["ipywidgets"] = "7.7.1"
    healthy_widgets["jupyterlab_widgets"] = "3.0.13"     # ipywidgets 8's front end
    check = selfcheck._check_widgets()
    assert check.status == FAIL and 'pip install "jupyterlab_widgets<2"' in check.fix
    assert "-U ipywidgets" not in check.fix


def test_the_classic_notebook_checks_widgetsnbextension(healthy_widgets, monkeypatch):
    healthy_widgets.update({"ipywidgets": "7.7.1", "notebook": "6.5.7", "widgetsnbextension": "3.6.1"})
    monkeypatch.setattr(selfcheck, "_classic_notebook_server", lambda: "6.5.7")
    check = selfcheck._check_widgets()
    assert check.status == OK and "classic Notebook 6.5.7" in check.detail
    healthy_widgets["widgetsnbextension"] = "4.0.13"
    check = selfcheck._check_widgets()
    assert check.status == FAIL and '"widgetsnbextension==3.*"' in check.fix

import os

import pytest
import torch

# The test networks are tiny: one intra-op thread runs them ~2x faster than two on this 2-core machine (the
# threads' synchronization costs more than the work they split), and it keeps timings steady under load.
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 1)))


@pytest.fixture(autouse=True)
def belamy_home(tmp_path_factory, monkeypatch):
    """One BELAMY_HOME for the whole session, never the user's: cached classifiers and statistics are made once.
    Under xdist (`make test`) each worker has its own basetemp, so its own home: nothing is shared between them."""
    home = tmp_path_factory.getbasetemp() / "belamy-home"
    monkeypatch.setenv("BELAMY_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def digits_classifier():
    """A classifier of scikit-learn's 8x8 digits (trained once per session, a second or two)."""
    from belamy.data import open_data
    from belamy.metrics.classifier import train_classifier

    # hidden=128: the 128-d embedding belamy's metrics compare (without it, Frechet distances of 3,136-d features
    # from 1,000 samples: singular covariances and several seconds of eigh per call)
    trained = train_classifier(open_data("digits"), epochs=8, hidden=128)
    assert trained.test_accuracy > 0.9, trained.test_accuracy
    return trained.net


@pytest.fixture(scope="session")
def mnist_classifier():
    from belamy.data import open_data
    from belamy.metrics.classifier import train_classifier

    trained = train_classifier(open_data("mnist"), epochs=3, hidden=128)
    assert trained.test_accuracy > 0.9, trained.test_accuracy
    return trained.net


# Modules of long trainings first: xdist hands tests out in collection order, and a long test that starts last keeps
# one worker busy after the other has finished.
_LONG_FIRST = ("test_recipes.py", "test_img2img.py", "test_text2img.py", "test_mode_coverage.py",
               "test_mode_collapse.py", "test_cli.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = item.path.name
        return _LONG_FIRST.index(name) if name in _LONG_FIRST else len(_LONG_FIRST)

    items.sort(key=rank)  # stable: the order within a module is kept

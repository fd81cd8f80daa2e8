"""A small indexed notes folder (notes filed in topic folders), one tiny real adapter, and
assistants on the Pi 4 2 GB and 16 GB laptop profiles sharing them."""
from __future__ import annotations

import pytest

from assistant.settings import Settings

NOTES = {
    "health/dentist.md": "# Dentist\n\nMy dentist is Dr. Priya Raman at Oakwood Dental Clinic.\n\n"
                         "## Next appointment\nThe next check-up is on March 14 at 10:15.\n",
    "health/running.md": "# Running\n\nI run on Tuesday and Saturday mornings along the river.\n\n"
                         "## Records\nMy personal best for 10 km is 48:12, set in Utrecht.\n",
    "home/garden.md": "# Garden\n\n## Tomatoes\nThe cherry tomatoes grow in the south bed and need water every evening.\n\n"
                      "## Compost\nThe compost bin is turned every Sunday morning with the red fork.\n",
    "home/landlord.md": "# Landlord\n\nMy landlord is Mr. Okafor. The monthly rent is 1450 euros, due on the 1st.\n",
    "work/job.md": "# Job\n\nI work at Northwind Traders as a data engineer. My manager is Carla Mendes.\n\n"
                   "## Standup\nThe team standup is at 9:30 in room Aurora, every weekday.\n",
    "work/laptop.txt": "Work laptop\n\nThe asset tag of my work laptop is NW-10422. IT support is on floor 3.\n",
}


def write_notes(folder):
    """The notes above under ``folder``; returns it."""
    for name, text in NOTES.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


@pytest.fixture(scope="package")
def router_home(tmp_path_factory):
    """ASSISTANT_HOME with the notes indexed by the real pipeline and a tiny real adapter
    (trained for a few seconds: its quality is not under test, its presence is)."""
    from assistant.knowledge.indexer import Indexer
    from assistant.learn.pipeline import learn
    from assistant.learn.train import TrainConfig
    from assistant.profiles import load_profile

    home = tmp_path_factory.mktemp("router-home")
    notes = write_notes(tmp_path_factory.mktemp("notes"))
    settings = Settings(home=home)
    Indexer(settings, progress=False).run([str(notes)])
    config = TrainConfig(rank=4, alpha=8, target_modules=("q_proj", "v_proj"), budget_s=8, batch_size=2,
                         max_tokens=48, evaluations=2, max_validation_examples=2)
    learn(settings, load_profile("laptop-16gb"), config=config)
    return settings


def assistant_for(settings: Settings, profile: str):
    """A real Assistant (default GGUF, the index, the active adapter) on ``profile``."""
    from assistant.orchestrator import Assistant

    return Assistant.load(settings.model_copy(update={"profile": profile, "n_ctx": 1024}))


@pytest.fixture(scope="package")
def laptop(router_home):
    return assistant_for(router_home, "laptop-16gb")


@pytest.fixture(scope="package")
def pi(router_home):
    return assistant_for(router_home, "raspberry-pi-4-2gb")

"""A small indexed notes folder and the loaded models the adapter tests share."""
from __future__ import annotations

import pytest

from assistant.settings import Settings
from tests.helpers import index_notes

NOTES = {
    "bike.md": "# My bike\n\n## Parking\nI park the blue bike in the basement rack number 14 at work.\n\n"
               "## Repairs\nThe rear brake pads were replaced at Velo Fix on Main Street in March.\n",
    "garden.md": "# Garden\n\n## Tomatoes\nThe cherry tomatoes grow in the south bed and need water every evening.\n\n"
                 "## Compost\nThe compost bin is turned every Sunday morning with the red fork.\n",
    "work.md": "# Work\n\n## Standup\nThe team standup is at 9:15 in room Aurora, every weekday.\n\n"
               "## Expenses\nExpense reports go to Miriam before the 25th of each month.\n",
    "family.md": "# Family\n\n## Birthdays\nGrandma Rosa's birthday is on the 3rd of June; she likes lilies.\n\n"
                 "## Recipes\nAunt Clara's lentil soup uses smoked paprika and a bay leaf.\n",
    "travel.md": "# Travel\n\n## Passport\nThe passport is in the grey folder in the desk drawer.\n\n"
                 "## Trains\nThe night train to Vienna leaves at 22:40 from platform 7.\n",
    "health.md": "# Health\n\n## Dentist\nDr. Okafor's dental office calls for a check-up every six months.\n\n"
                 "## Running\nThe Tuesday running loop along the river is 7.5 kilometres.\n",
}


@pytest.fixture(scope="package")
def learn_home(tmp_path_factory):
    """ASSISTANT_HOME with the notes above indexed by the real knowledge pipeline."""
    home = tmp_path_factory.mktemp("learn-home")
    index_notes(home, tmp_path_factory.mktemp("notes"), NOTES)
    return Settings(home=home)


@pytest.fixture(scope="package")
def hf_smollm(learn_home):
    """The default GGUF dequantized into torch (loaded once: it takes a while)."""
    from assistant.models.hf_model import load_hf_model
    from assistant.models.catalog import resolve_model

    return load_hf_model(resolve_model("default", learn_home).path, threads=2)

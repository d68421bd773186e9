from rubricate import schemas
from rubricate.generators import GENERATORS, load


def test_every_generator_declares_what_it_writes_and_needs():
    kinds = set(schemas.names())
    for name in GENERATORS:
        module = load(name)
        assert isinstance(module.REQUIRES, tuple) and "problem" in module.REQUIRES, name
        # Each feedback kind is validated by its own schema; steps and rubrics are record fields.
        expected = {"steps": "trace", "rubric_author": "rubric_file"}.get(name, module.KIND)
        assert expected in kinds, f"{name}: no schema {expected}.schema.json"
        assert name.split(".")[0] in (module.KIND, "rubric_author"), name

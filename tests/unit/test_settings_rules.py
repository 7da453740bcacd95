import pytest

from chalicelib.domain import settings
from chalicelib.domain.errors import ValidationFailed


def test_effective_settings_follow_defaults_until_overridden():
    assert settings.effective(None) == settings.DEFAULTS
    overrides = settings.apply_patch({}, {"limits": {"tags_per_segment": 4}})
    assert overrides == {"limits": {"tags_per_segment": 4}}
    view = settings.effective(overrides)
    assert settings.limit(view, "tags_per_segment") == 4
    assert settings.limit(view, "segments_per_campaign") == 10


def test_null_resets_to_default_and_empty_groups_vanish():
    overrides = settings.apply_patch({}, {"sender": {"email": "a@example.com"}, "send_rate_per_second": 3})
    overrides = settings.apply_patch(overrides, {"sender": {"email": None}})
    assert overrides == {"send_rate_per_second": 3}
    assert settings.effective(overrides)["sender"]["email"] is None
    assert settings.apply_patch(overrides, {"send_rate_per_second": None}) == {}


def test_patch_does_not_mutate_its_input():
    overrides = {"limits": {"tags_per_segment": 4}}
    settings.apply_patch(overrides, {"limits": {"tags_per_segment": 6}})
    assert overrides == {"limits": {"tags_per_segment": 4}}


@pytest.mark.parametrize(
    "patch, field",
    [
        ({}, "body"),
        ({"limits": {"tags_per_segment": 0}}, "limits.tags_per_segment"),
        ({"limits": {"tags_per_segment": True}}, "limits.tags_per_segment"),
        ({"sender": {"reply_to": "nope"}}, "sender.reply_to"),
        ({"frequency_cap": {"per_days": 91}}, "frequency_cap.per_days"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_patches_name_the_field(patch, field):
    with pytest.raises(ValidationFailed) as refused:
        settings.apply_patch({}, patch)
    assert refused.value.field == field

"""Numbers inside a list are shown without thousands separators: [1536, 512, 512] printed as
'[1,536, 512, 512]' read as four numbers."""

from zturbo.trace_report import fmt


def test_list_ints_have_no_thousands_separator():
    assert fmt([1536, 512, 512]) == "[1536, 512, 512]"
    assert fmt([[1, 0, 0], [1065, 3, 3]]) == "[[1, 0, 0], [1065, 3, 3]]"


def test_lone_ints_keep_the_separator():
    assert fmt(6154908736) == "6,154,908,736"
    assert fmt([0.5, True, None]) == "[0.5, True, None]"

"""How the back office writes dates and times: to the second, with the zone, in the order
that sorts ("2026-11-27 18:09:28 UTC"), on every page. Django's own English format
("Nov. 27, 2026, 6:09 p.m.") hid the seconds that tell two fills apart, and sat beside
ISO 8601 on the pages that wrote times by hand; ``core.admin.admin_time`` writes those
with this format too. The API answers ISO 8601 (REST_FRAMEWORK's DATETIME_FORMAT) and
CSV exports keep ISO 8601 for programs."""

DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATE_FORMAT = DATE_FORMAT
SHORT_DATETIME_FORMAT = DATETIME_FORMAT

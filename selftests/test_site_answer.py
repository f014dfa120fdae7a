"""What counts as the site answering GET / (3.3, 3.4, and 2.3's return after the start)."""
import pytest

from awsenv.hosts.probes import site_answer

FEDORA_TEST_PAGE = "<html><head><title>Test Page for the HTTP Server on Fedora</title></head><body>...</body></html>"
AL2023_TEST_PAGE = "<html><body><h1>It works!</h1></body></html>"
APACHE_FORBIDDEN = ('<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n<title>403 Forbidden</title>\n'
                    "</head><body>\n<h1>Forbidden</h1>\n<p>You don't have permission to access this resource.</p>")


@pytest.mark.parametrize("status, body, answered", [
    (200, "<h1>twotier</h1>", True),
    (200, "", True),
    (403, FEDORA_TEST_PAGE, True),           # RHEL-family httpd before any content: the test page, status 403
    (403, AL2023_TEST_PAGE, True),
    (403, APACHE_FORBIDDEN, False),          # a site that refuses its visitors
    (403, "", False),
    (404, AL2023_TEST_PAGE, False),
    (500, "Test Page", False),
])
def test_site_answer(status, body, answered):
    assert bool(site_answer(status, body)) is answered

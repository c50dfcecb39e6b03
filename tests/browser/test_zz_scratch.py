import time
from tests.browser.test_dashboard import *  # noqa


def test_modes(context, stack, fleet):
    page = context.new_page()
    logs = []
    page.on("console", lambda m: logs.append(f"{time.monotonic():.1f} {m.type}: {m.text}"))
    sign_in(page, stack, "/dashboard/devices/fz-1")
    for _ in range(8):
        print(f"{time.monotonic():.1f}", page.evaluate("document.body.dataset.live"))
        time.sleep(1)
    print("\n".join(logs[:20]))

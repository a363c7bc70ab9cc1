# shellcheck shell=bash
# Headless Chromium and its WebDriver for the dashboard's browser test. Installs the Debian packages
# when missing (nothing downloads a browser by itself); exports OMNINODE_TEST_CHROME and
# OMNINODE_TEST_CHROMEDRIVER for tests/dashboard_browser.rs.

ensure_chromium() {
    local chrome driver
    chrome="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
    driver="$(command -v chromedriver || true)"
    if [ -z "$chrome" ] || [ -z "$driver" ]; then
        echo "installing chromium and chromium-driver (Debian packages)" >&2
        local sudo=""
        if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
        $sudo apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >&2
        chrome="$(command -v chromium)"
        driver="$(command -v chromedriver)"
    fi
    export OMNINODE_TEST_CHROME="$chrome"
    export OMNINODE_TEST_CHROMEDRIVER="$driver"
}

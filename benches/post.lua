-- wrk script: one pour per request (see the README, "Performance").
wrk.method = "POST"
wrk.body   = '{"tapId": 3, "volume": 500}'
wrk.headers["Content-Type"] = "application/json"

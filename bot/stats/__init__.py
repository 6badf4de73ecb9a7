"""Manager insight: figures over a period (volume, response times, satisfaction, tags,
people, rota), the charts drawn from them, and CSV exports.

`queries` holds the SQL, `figures` the pure arithmetic over what the queries return,
`report` puts the two together for one period; none of it knows about Slack.
"""

"""Reading CI output: one reader for every path that reads a failed check (issue 15).

Pure: text, parsed JSON and artifact bytes in, typed records out. What GitHub structures is read first
(annotations, JUnit reports), then the job log: cleaned (``clean``), thinned by templates learned from the same
job's green runs (``noise``), scanned for failing tests per framework (``tests``), the root error
(``errors``) and infrastructure failures (``infra``); ``reading`` combines them into one ``Reading`` with one
signature, and ``digest`` renders it for people.
"""

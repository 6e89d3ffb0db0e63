"""Speech recognition: engines, the job worker pool, transcripts, keyword rules, QA scorecards."""

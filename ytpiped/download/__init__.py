"""Download stage helpers: error classes, pacing, cookies, the blocking yt-dlp calls."""

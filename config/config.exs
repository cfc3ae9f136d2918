import Config

# The store bin/demo starts, configured from the application environment
# the way an application configures its own stores (see the Tms moduledoc).
config :tms, :demo_store,
  name: :demo,
  wal_sync: {:interval, 100},
  flush_interval: 1_000,
  cold_after: 300_000,
  retention: 30 * 86_400_000

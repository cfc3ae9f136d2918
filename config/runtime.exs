import Config

# Runtime settings come from the environment; the directory is the one
# thing that differs between machines.
config :tms, :demo_store, data_dir: System.get_env("TMS_DEMO_DIR", Path.expand("../demo_data", __DIR__))

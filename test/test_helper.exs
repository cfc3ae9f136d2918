Code.ensure_loaded!(Tms.Native)
ExUnit.start()

defmodule Tms.DocTest do
  use ExUnit.Case, async: true

  setup_all do
    dir = Path.join(System.tmp_dir!(), "tms_test/doc_store")
    File.rm_rf!(dir)
    start_supervised!({Tms, name: :doc_store, data_dir: dir, wal_sync: :never})
    on_exit(fn -> File.rm_rf!(dir) end)
  end

  doctest Tms
end

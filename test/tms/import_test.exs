defmodule Tms.ImportTest do
  # Tms.import/4: whole bodies parsed in the engine, checked against a
  # model, a real exporter's body, and bad input.
  use Tms.Case, async: true
  alias Tms.Test.RemoteWrite

  @fixture Path.expand("../fixtures/node_exporter_1.5.prom", __DIR__)
  @ts 1_700_000_000_000

  defp all(store, metric) do
    {:ok, result} = Tms.query_range(store, metric, %{}, 0, 4_000_000_000_000)
    Map.new(result, &{&1.labels, &1.points})
  end

  describe "Prometheus text" do
    test "random bodies round-trip against a model", ctx do
      store = start_store(ctx)
      :rand.seed(:exsss, {7, 8, 9})

      model =
        for round <- 1..20, reduce: %{} do
          model ->
            samples =
              for _ <- 1..50 do
                labels = %{"host" => random_value(), "empty" => "", "n" => "#{:rand.uniform(5)}"}
                {labels, @ts + round * 1000 + :rand.uniform(3), random_float()}
              end

            body =
              Enum.map_join(samples, "\n", fn {labels, ts, v} ->
                pairs = Enum.map_join(labels, ",", fn {k, val} -> ~s(#{k}="#{escape(val)}") end)
                "m{#{pairs}} #{format(v)} #{ts}"
              end)

            assert {:ok, %{samples: 50}} = Tms.import(store, :prometheus_text, body)

            Enum.reduce(samples, model, fn {labels, ts, v}, acc ->
              key = Map.reject(labels, fn {_, val} -> val == "" end)
              Map.update(acc, key, %{ts => v}, &Map.put(&1, ts, v))
            end)
        end

      stored = all(store, "m")
      assert Map.keys(stored) |> Enum.sort() == Map.keys(model) |> Enum.sort()

      for {labels, points} <- model do
        assert stored[labels] == Enum.sort(points), inspect(labels)
      end
    end

    test "a real node_exporter body: every sample, empty values absent, import labels applied", ctx do
      store = start_store(ctx)
      body = File.read!(@fixture)

      sample_lines =
        body |> String.split("\n") |> Enum.count(&(&1 != "" and not String.starts_with?(&1, "#")))

      assert {:ok, %{samples: ^sample_lines, series_created: ^sample_lines}} =
               Tms.import(store, :prometheus_text, body,
                 labels: [job: "node", instance: "localhost:9100"],
                 timestamp: @ts
               )

      assert {:ok, [build]} = Tms.series(store, "node_exporter_build_info")
      assert %{"job" => "node", "instance" => "localhost:9100", "version" => "1.5.0"} = build

      assert {:ok, %{series_created: 0}} =
               Tms.import(store, :prometheus_text, body,
                 labels: %{"job" => "node", "instance" => "localhost:9100"},
                 timestamp: @ts + 1
               )

      {:ok, series} = Tms.series(store, "node_network_info")
      assert series != []
      assert Enum.all?(series, fn labels -> Enum.all?(labels, fn {_, v} -> v != "" end) end)

      assert {:ok, [%{points: [{@ts, _}, {_, _}]} | _]} =
               Tms.query_range(store, "node_cpu_seconds_total", %{}, 0, @ts + 1)
    end

    test "a store that fsyncs every write imports the same, on a dirty I/O scheduler", ctx do
      store = start_store(ctx, wal_sync: :always)
      body = File.read!(@fixture)

      # The second and third bodies are known series, the third in the same
      # order as the second (the sequence an import follows).
      for {round, created} <- [{0, :new}, {1, 0}, {2, 0}] do
        assert {:ok, %{samples: samples, series_created: n}} =
                 Tms.import(store, :prometheus_text, body, timestamp: @ts + round)

        assert created == :new or n == created
        assert samples > 500
      end

      assert {:ok, [%{points: [{@ts, v}, {_, v}, {_, v}]} | _]} =
               Tms.query_range(store, "node_cpu_seconds_total", %{}, 0, @ts + 2)
    end

    test "a series spelled as before is recognized; other import labels make other series", ctx do
      store = start_store(ctx)
      body = ~s(m{a="1"} 1 #{@ts}\nm{a="2"} 2 #{@ts}\n)
      assert {:ok, %{series_created: 2}} = Tms.import(store, :prometheus_text, body)

      assert {:ok, %{series_created: 0}} =
               Tms.import(store, :prometheus_text, String.replace(body, " 1 ", " 3 "))

      assert {:ok, %{series_created: 2}} = Tms.import(store, :prometheus_text, body, labels: %{"job" => "x"})
      assert {:ok, %{series_created: 0}} = Tms.import(store, :prometheus_text, body, labels: %{"job" => "x"})
      # The same series spelled another way (spaces) is still the same series.
      assert {:ok, %{series_created: 0}} = Tms.import(store, :prometheus_text, ~s(m{ a = "1" } 4 #{@ts + 1}))
      assert %{%{"a" => "1"} => [{@ts, 3.0}, {_, 4.0}]} = all(store, "m")
    end

    test "a malformed line rejects the whole body with its line number", ctx do
      store = start_store(ctx)
      body = "ok 1 #{@ts}\nok 2 #{@ts + 1}\n\nbad{x=\"1\" 3\n"

      assert {:error, %Tms.Error{kind: :invalid_argument, details: %{line: 4}, message: message}} =
               Tms.import(store, :prometheus_text, body)

      assert message =~ ~s(bad{x=\\"1\\" 3)
      assert {:ok, []} = Tms.metrics(store)

      for bad <- ["m{x=\"\xff\"} 1", "m{#{String.duplicate("a", 300)}=\"v\"} 1", "m{__name__=\"x\"} 1"] do
        assert {:error, %Tms.Error{kind: :invalid_argument}} = Tms.import(store, :prometheus_text, bad)
      end

      assert {:error, %Tms.Error{kind: :invalid_argument}} = Tms.import(store, :protobuf, "")
      assert {:error, %Tms.Error{kind: :invalid_argument}} = Tms.import(store, :prometheus_text, :body)

      assert {:error, %Tms.Error{kind: :invalid_argument}} =
               Tms.import(store, :prometheus_text, "m 1", colour: 1)

      assert {:error, %Tms.Error{kind: :invalid_argument}} =
               Tms.import(store, :prometheus_text, "m 1", labels: [{"a", 1}])

      assert {:ok, []} = Tms.metrics(store)
    end
  end

  describe "JSON lines" do
    test "random bodies round-trip against a model", ctx do
      store = start_store(ctx)
      :rand.seed(:exsss, {1, 2, 3})

      model =
        for round <- 1..20, reduce: %{} do
          model ->
            lines =
              for _ <- 1..20 do
                labels = %{"host" => random_value(), "empty" => "", "n" => "#{:rand.uniform(4)}"}

                points =
                  for i <- 1..:rand.uniform(5), do: {@ts + round * 100 + i * :rand.uniform(3), random_float()}

                {labels, points}
              end

            body =
              Enum.map_join(lines, "\n", fn {labels, points} ->
                metric =
                  Enum.map_join([{"__name__", "j"} | Enum.to_list(labels)], ",", fn {k, v} ->
                    json(k) <> ":" <> json(v)
                  end)

                values = Enum.map_join(points, ",", fn {_, v} -> json_value(v) end)
                stamps = Enum.map_join(points, ",", fn {t, _} -> Integer.to_string(t) end)
                ~s({"metric":{#{metric}},"values":[#{values}],"timestamps":[#{stamps}]})
              end)

            assert {:ok, _} = Tms.import(store, :json_lines, body)

            Enum.reduce(lines, model, fn {labels, points}, acc ->
              key = Map.reject(labels, fn {_, v} -> v == "" end)

              Enum.reduce(points, acc, fn {t, v}, acc ->
                Map.update(acc, key, %{t => v}, &Map.put(&1, t, v))
              end)
            end)
        end

      stored = all(store, "j")
      assert Enum.sort(Map.keys(stored)) == Enum.sort(Map.keys(model))
      for {labels, points} <- model, do: assert(stored[labels] == Enum.sort(points), inspect(labels))
    end

    test "series lines round-trip, __name__ is the metric, bad lines are named", ctx do
      store = start_store(ctx)

      body = """
      {"metric":{"__name__":"up","job":"node","e":""},"values":[1,0.5,"NaN"],"timestamps":[#{@ts},#{@ts + 1},#{@ts + 2}]}
      {"metric":{"__name__":"up","job":"vm"},"values":["+Inf"],"timestamps":[#{@ts}]}
      """

      assert {:ok, %{samples: 4, series_created: 2}} =
               Tms.import(store, :json_lines, body, labels: %{"dc" => "x"})

      assert %{
               %{"job" => "node", "dc" => "x"} => [{@ts, 1.0}, {_, 0.5}, {_, :nan}],
               %{"job" => "vm", "dc" => "x"} => [{@ts, :infinity}]
             } = all(store, "up")

      bad =
        ~s({"metric":{"__name__":"up"},"values":[1],"timestamps":[1]}\n{"metric":{"job":"x"},"values":[1],"timestamps":[1]})

      assert {:error, %Tms.Error{kind: :invalid_argument, details: %{line: 2}}} =
               Tms.import(store, :json_lines, bad)

      assert map_size(all(store, "up")) == 2
    end
  end

  describe "remote_write" do
    test "a WriteRequest as Prometheus sends it, staleness bits kept", ctx do
      store = start_store(ctx)
      stale = <<0x7FF0_0000_0000_0002::little-64>>

      series = [
        {[{"__name__", "http_requests_total"}, {"job", "api"}, {"empty", ""}],
         [{1.5, @ts}, {stale, @ts + 1}]},
        {[{"__name__", "up"}, {"job", "api"}], [{1.0, @ts}]}
      ]

      body = RemoteWrite.body(series)
      assert {:ok, %{samples: 3, series_created: 2, ignored: 0}} = Tms.import(store, :remote_write, body)

      {:ok, [%{labels: %{"job" => "api"}, points: points}]} =
        Tms.query_range(store, "http_requests_total", %{}, 0, @ts + 1, format: :binary)

      assert points ==
               <<@ts::little-signed-64, 1.5::little-float-64, @ts + 1::little-signed-64, stale::binary>>

      for bad <- [<<255, 255, 255, 255, 15>>, RemoteWrite.snappy(<<10, 5, 1, 2>>), "garbage"] do
        assert {:error, %Tms.Error{kind: :invalid_argument}} = Tms.import(store, :remote_write, bad)
      end

      assert {:error, %Tms.Error{kind: :invalid_argument, message: message}} =
               Tms.import(store, :remote_write, body, max_decompressed_bytes: 10)

      assert message =~ "more than the limit of 10"
    end
  end

  defp random_value do
    Enum.random(["a", "b\\c", "q\"uote", "new\nline", "ünï", "x,y}z", "   "])
  end

  defp random_float do
    case :rand.uniform(10) do
      1 -> :nan
      2 -> :infinity
      3 -> :neg_infinity
      _ -> Float.round(:rand.uniform() * 1000 - 500, 3)
    end
  end

  defp json(s) do
    escaped = s |> String.replace("\\", "\\\\") |> String.replace("\"", "\\\"") |> String.replace("\n", "\\n")
    "\"" <> escaped <> "\""
  end

  defp json_value(v) when is_float(v), do: Float.to_string(v)
  defp json_value(v), do: json(format(v))

  defp format(:nan), do: "NaN"
  defp format(:infinity), do: "+Inf"
  defp format(:neg_infinity), do: "-Inf"
  defp format(v), do: Float.to_string(v)

  defp escape(value) do
    value |> String.replace("\\", "\\\\") |> String.replace("\"", "\\\"") |> String.replace("\n", "\\n")
  end
end

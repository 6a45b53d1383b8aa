#!/bin/bash
# Every result in data/results/transfer (chapter 12), one job at a time on the CPU, in order of importance.
# A job whose result file exists is skipped, so the script resumes where it stopped; a killed training resumes.
#   bash scripts/transfer_queue.sh            (from the repository root; logs in data/results/transfer/logs)
# The fine-tuning protocol is nattools.transfer.FinetuneConfig's defaults, the same for every start; the
# frozen probes are `eval`'s (nattools.evaluate). Validation splits only: 0.1 of each training set, seed 0.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-python}
C=data/checkpoints R=data/results/transfer
NAT=$C/cifar10_nat_val.pt TINY=$C/tinyimagenet_nat.pt SUP=$C/tinyimagenet_supervised.pt
mkdir -p $R/logs
job() {   # job NAME nattools-arguments...: writes $R/NAME.json
  local name=$1; shift
  [ -f $R/$name.json ] && return
  echo "$(date +%T) $name: $*"
  "$PY" -m nattools "$@" --out $R/$name.json > $R/logs/$name.log 2>&1 || echo "  failed: see $R/logs/$name.log"
}
# frozen probes first (seconds to minutes each)
# a. few labels on CIFAR-10: frozen probes at each label budget
for n in 10 50 500; do
  job frozen_nat_l${n}_s0 eval $NAT --labels_per_class $n
  job frozen_random_l${n}_s0 eval $NAT --labels_per_class $n --baseline random
  job frozen_tiny_l${n}_s0 eval $TINY --dataset cifar10 --labels_per_class $n
done
# b. across data sets, frozen (every label of the target's training split)
job nat_to_cifar eval $NAT --dataset cifar10
job nat_to_cifar_random eval $NAT --dataset cifar10 --baseline random
job tiny_to_cifar eval $TINY --dataset cifar10
job tiny_to_cifar_random eval $TINY --dataset cifar10 --baseline random
job cifar_to_tiny_l50 eval $NAT --dataset tinyimagenet --labels_per_class 50
job cifar_to_tiny_l50_random eval $NAT --dataset tinyimagenet --labels_per_class 50 --baseline random
job tiny_to_tiny_l50 eval $TINY --labels_per_class 50
job tiny_to_tiny_l50_random eval $TINY --labels_per_class 50 --baseline random
# c. the more you pretrain: the recipe's snapshots -> Tiny ImageNet; Tiny ImageNet's snapshots -> CIFAR-10
for e in 6 12 18 24 30; do job snap_cifar_e${e}_to_tiny_l50 eval $C/cifar10_nat_val_epoch$e.pt --dataset tinyimagenet --labels_per_class 50; done
job snap_cifar_e36_to_tiny_l50 eval $NAT --dataset tinyimagenet --labels_per_class 50
for e in 6 12 18 24; do job snap_tiny_e${e}_to_cifar eval $C/tinyimagenet_nat_epoch$e.pt --dataset cifar10; done
# a. fine-tuned from CIFAR-10 NAT, random init and Tiny ImageNet NAT (minutes each)
for n in 10 50; do for s in 0 1; do
  job ft_nat_l${n}_s$s finetune $NAT --labels_per_class $n --seed $s
  job ft_random_l${n}_s$s finetune $NAT --labels_per_class $n --random_init --seed $s
  job ft_tiny_l${n}_s$s finetune $TINY --dataset cifar10 --labels_per_class $n --seed $s
done; done
# things to try (chapter 12's answers): a gentler trunk, a shorter schedule
job try_trunk01_nat_l50_s0 finetune $NAT --labels_per_class 50 --trunk_lr 0.1
job try_steps100_nat_l50_s0 finetune $NAT --labels_per_class 50 --min_steps 100
job try_steps100_random_l50_s0 finetune $NAT --labels_per_class 50 --min_steps 100 --random_init
for start in nat random tiny; do
  case $start in nat) a="$NAT";; random) a="$NAT --random_init";; tiny) a="$TINY --dataset cifar10";; esac
  job ft_${start}_l500_s0 finetune $a --labels_per_class 500
done
# the paper's "ImageNet labels" row at this scale: the same network trained with Tiny ImageNet's labels
# (6 epochs, about 20 min alone here)
[ -f $SUP ] || "$PY" -m nattools train --dataset tinyimagenet --objective softmax --d 202 --epochs 6 \
  --name tinyimagenet_supervised --out data --no-eval_knn > $R/logs/tinyimagenet_supervised.log 2>&1
job suptiny_to_cifar eval $SUP --dataset cifar10
job suptiny_to_cifar_random eval $SUP --dataset cifar10 --baseline random
for n in 10 50 500; do job ft_suptiny_l${n}_s0 finetune $SUP --dataset cifar10 --labels_per_class $n; done
# second seeds at 500 labels per class
for start in nat random tiny; do
  case $start in nat) a="$NAT";; random) a="$NAT --random_init";; tiny) a="$TINY --dataset cifar10";; esac
  job ft_${start}_l500_s1 finetune $a --labels_per_class 500 --seed 1
done
# every label
job ft_nat_lall_s0 finetune $NAT --labels_per_class 0
job ft_random_lall_s0 finetune $NAT --labels_per_class 0 --random_init
echo "$(date +%T) transfer queue done"

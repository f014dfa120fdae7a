#!/usr/bin/env bash
# The article typed into the AWS CLI by someone who never heard of this project: their own names,
# a key pair AWS makes (create-key-pair), subnets in a zone that offers t2.micro, SSH open to one address,
# the DB's rules from the web server's group. AWS_ENDPOINT_URL, the credentials and
# AWS_DEFAULT_REGION come from the caller (the lab's, as `provision.py status --credentials` prints them).
# Usage: article_by_cli.sh KEY_FILE ADMIN_CIDR   -- prints NAME=ID lines.
set -euo pipefail
key_file=$1 admin=$2
ec2() { aws ec2 "$@"; }

vpc=$(ec2 create-vpc --cidr-block 10.0.0.0/16 --query Vpc.VpcId --output text \
      --tag-specifications 'ResourceType=vpc,Tags=[{Key=Name,Value=shop-vpc}]')
ec2 modify-vpc-attribute --vpc-id "$vpc" --enable-dns-hostnames '{"Value":true}'
# Not every zone offers every type (RunInstances answers Unsupported there): AWS's own advice is to
# ask which zones offer it.
zone=$(ec2 describe-instance-type-offerings --location-type availability-zone \
       --filters Name=instance-type,Values=t2.micro --query 'InstanceTypeOfferings[0].Location' --output text)
public=$(ec2 create-subnet --vpc-id "$vpc" --cidr-block 10.0.1.0/24 --availability-zone "$zone" \
         --query Subnet.SubnetId --output text)
private=$(ec2 create-subnet --vpc-id "$vpc" --cidr-block 10.0.2.0/24 --availability-zone "$zone" \
          --query Subnet.SubnetId --output text)
igw=$(ec2 create-internet-gateway --query InternetGateway.InternetGatewayId --output text)
ec2 attach-internet-gateway --internet-gateway-id "$igw" --vpc-id "$vpc"
public_rt=$(ec2 create-route-table --vpc-id "$vpc" --query RouteTable.RouteTableId --output text)
ec2 create-route --route-table-id "$public_rt" --destination-cidr-block 0.0.0.0/0 --gateway-id "$igw" >/dev/null
ec2 associate-route-table --route-table-id "$public_rt" --subnet-id "$public" >/dev/null

web_sg=$(ec2 create-security-group --group-name shop-front --description "front end" --vpc-id "$vpc" \
         --query GroupId --output text)
db_sg=$(ec2 create-security-group --group-name shop-db --description "database" --vpc-id "$vpc" \
        --query GroupId --output text)
ec2 authorize-security-group-ingress --group-id "$web_sg" --protocol tcp --port 22 --cidr "$admin" >/dev/null
ec2 authorize-security-group-ingress --group-id "$web_sg" --protocol tcp --port 80 --cidr 0.0.0.0/0 >/dev/null
for rule in "tcp --port 22" "tcp --port 3306" "icmp --port -1"; do
    # shellcheck disable=SC2086
    ec2 authorize-security-group-ingress --group-id "$db_sg" --protocol $rule --source-group "$web_sg" >/dev/null
done

ec2 create-key-pair --key-name shop-key --query KeyMaterial --output text > "$key_file"
chmod 600 "$key_file"
ami=$(aws ssm get-parameter --name /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64 \
      --query Parameter.Value --output text)
launch() {  # subnet group name
    ec2 run-instances --image-id "$ami" --instance-type t2.micro --key-name shop-key --subnet-id "$1" \
        --security-group-ids "$2" --query 'Instances[0].InstanceId' --output text \
        --tag-specifications "ResourceType=instance,Tags=[{Key=Name,Value=$3}]"
}
web=$(launch "$public" "$web_sg" shop-front)
db=$(launch "$private" "$db_sg" shop-db)
eip=$(ec2 allocate-address --domain vpc --query AllocationId --output text)
ec2 wait instance-running --instance-ids "$web"
ec2 associate-address --allocation-id "$eip" --instance-id "$web" >/dev/null

nat_eip=$(ec2 allocate-address --domain vpc --query AllocationId --output text)
nat=$(ec2 create-nat-gateway --subnet-id "$public" --allocation-id "$nat_eip" \
      --query NatGateway.NatGatewayId --output text)
ec2 wait nat-gateway-available --nat-gateway-ids "$nat"
private_rt=$(ec2 create-route-table --vpc-id "$vpc" --query RouteTable.RouteTableId --output text)
ec2 create-route --route-table-id "$private_rt" --destination-cidr-block 0.0.0.0/0 --nat-gateway-id "$nat" >/dev/null
ec2 associate-route-table --route-table-id "$private_rt" --subnet-id "$private" >/dev/null
ec2 wait instance-running --instance-ids "$db"

echo "vpc=$vpc"
echo "web=$web"
echo "db=$db"
echo "web_address=$(ec2 describe-addresses --allocation-ids "$eip" --query 'Addresses[0].PublicIp' --output text)"
echo "db_address=$(ec2 describe-instances --instance-ids "$db" --query 'Reservations[0].Instances[0].PrivateIpAddress' --output text)"
echo "nat=$nat"
echo "nat_eip=$nat_eip"
